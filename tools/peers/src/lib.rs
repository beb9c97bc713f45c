//! COLD (a measuring tool) — peers of Portcullis, built apart from the workspace
//! (`tools/peers/`, excluded from it so `cargo test --workspace` never compiles QuickFIX or
//! fefix): the `quickfix-acceptor` binary and the `codec_peers` bench. This library holds what
//! they share: the QuickFIX data dictionary written from our own `fix-specs/FIX44.dict`, so both
//! engines validate orders against the same fields, types, enumerations and required flags.

use std::fmt::Write as _;

/// One field definition.
struct Field {
    tag: u32,
    name: String,
    ty: String,
    values: Vec<(String, String)>,
}

/// One member of a header, trailer, message or group.
enum Member {
    Field {
        name: String,
        required: bool,
    },
    Group {
        name: String,
        required: bool,
        members: Vec<Member>,
    },
}

struct MessageDef {
    msg_type: String,
    name: String,
    admin: bool,
    members: Vec<Member>,
}

/// Translates a Portcullis dictionary (`fix-specs/DICTIONARY-FORMAT.md`) into a QuickFIX
/// DataDictionary XML document. `cond` lines (conditionally required fields) have no QuickFIX
/// form and are left out; `unsupported` messages are left out too.
pub fn quickfix_dictionary(dict: &str) -> Result<String, String> {
    let mut version = None;
    let mut fields: Vec<Field> = Vec::new();
    let mut header = Vec::new();
    let mut trailer = Vec::new();
    let mut messages: Vec<MessageDef> = Vec::new();
    // Where members go: 0 none, 1 header, 2 trailer, 3 the last message; plus an open group.
    let mut section = 0u8;
    let mut group: Option<(String, bool, Vec<Member>)> = None;
    for (n, raw) in dict.lines().enumerate() {
        let words: Vec<&str> = raw
            .split_whitespace()
            .take_while(|w| !w.starts_with('#'))
            .collect();
        let Some(&kw) = words.first() else { continue };
        let at = |what: &str| format!("line {}: {what}: `{}`", n + 1, raw.trim());
        let word = |i: usize| words.get(i).copied().ok_or_else(|| at("missing word"));
        match kw {
            "version" => version = Some(word(1)?.to_string()),
            "field" => fields.push(Field {
                tag: word(1)?.parse().map_err(|_| at("bad tag"))?,
                name: word(2)?.to_string(),
                ty: match word(3)? {
                    "UTCDATE" => "UTCDATEONLY".to_string(),
                    t => t.to_string(),
                },
                values: Vec::new(),
            }),
            "value" => {
                let f = fields
                    .last_mut()
                    .ok_or_else(|| at("value before any field"))?;
                let desc = words.get(2..).map(|w| w.join("_")).unwrap_or_default();
                f.values.push((word(1)?.to_string(), desc));
            }
            "header" => section = 1,
            "trailer" => section = 2,
            "message" => {
                messages.push(MessageDef {
                    msg_type: word(1)?.to_string(),
                    name: word(2)?.to_string(),
                    admin: word(3)? == "admin",
                    members: Vec::new(),
                });
                section = 3;
            }
            "unsupported" => {}
            "req" | "opt" => {
                let m = Member::Field {
                    name: word(1)?.to_string(),
                    required: kw == "req",
                };
                if let Some((_, _, members)) = &mut group {
                    members.push(m);
                } else {
                    match section {
                        1 => header.push(m),
                        2 => trailer.push(m),
                        3 => match messages.last_mut() {
                            Some(msg) => msg.members.push(m),
                            None => return Err(at("member outside a message")),
                        },
                        _ => return Err(at("member outside a section")),
                    }
                }
            }
            "group" => group = Some((word(1)?.to_string(), word(2)? == "req", Vec::new())),
            "cond" => {}
            "end" => {
                if let Some((name, required, members)) = group.take() {
                    let g = Member::Group {
                        name,
                        required,
                        members,
                    };
                    match messages.last_mut() {
                        Some(msg) if section == 3 => msg.members.push(g),
                        _ => return Err(at("group outside a message")),
                    }
                } else {
                    section = 0;
                }
            }
            _ => return Err(at("unknown keyword")),
        }
    }
    let version = version.ok_or("no `version` line")?;
    let (major, minor) = match version.as_str() {
        "FIX.4.4" => ("4", "4"),
        "FIX.4.2" => ("4", "2"),
        v => return Err(format!("version {v} is not FIX.4.2 or FIX.4.4")),
    };
    let mut x = String::new();
    let _ = writeln!(
        x,
        "<fix type=\"FIX\" major=\"{major}\" minor=\"{minor}\" servicepack=\"0\">"
    );
    x.push_str(" <header>\n");
    members_xml(&mut x, &header, 2);
    x.push_str(" </header>\n <messages>\n");
    for m in &messages {
        let _ = writeln!(
            x,
            "  <message name=\"{}\" msgtype=\"{}\" msgcat=\"{}\">",
            esc(&m.name),
            esc(&m.msg_type),
            if m.admin { "admin" } else { "app" }
        );
        members_xml(&mut x, &m.members, 3);
        x.push_str("  </message>\n");
    }
    x.push_str(" </messages>\n <trailer>\n");
    members_xml(&mut x, &trailer, 2);
    x.push_str(" </trailer>\n <components>\n </components>\n <fields>\n");
    for f in &fields {
        if f.values.is_empty() {
            let _ = writeln!(
                x,
                "  <field number=\"{}\" name=\"{}\" type=\"{}\"/>",
                f.tag,
                esc(&f.name),
                esc(&f.ty)
            );
        } else {
            let _ = writeln!(
                x,
                "  <field number=\"{}\" name=\"{}\" type=\"{}\">",
                f.tag,
                esc(&f.name),
                esc(&f.ty)
            );
            for (v, d) in &f.values {
                let _ = writeln!(
                    x,
                    "   <value enum=\"{}\" description=\"{}\"/>",
                    esc(v),
                    esc(&d.to_uppercase())
                );
            }
            x.push_str("  </field>\n");
        }
    }
    x.push_str(" </fields>\n</fix>\n");
    Ok(x)
}

fn members_xml(x: &mut String, members: &[Member], indent: usize) {
    let pad = " ".repeat(indent);
    for m in members {
        match m {
            Member::Field { name, required } => {
                let _ = writeln!(
                    x,
                    "{pad}<field name=\"{}\" required=\"{}\"/>",
                    esc(name),
                    yn(*required)
                );
            }
            Member::Group {
                name,
                required,
                members,
            } => {
                let _ = writeln!(
                    x,
                    "{pad}<group name=\"{}\" required=\"{}\">",
                    esc(name),
                    yn(*required)
                );
                members_xml(x, members, indent + 1);
                let _ = writeln!(x, "{pad}</group>");
            }
        }
    }
}

fn yn(b: bool) -> &'static str {
    if b {
        "Y"
    } else {
        "N"
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_fix44_dictionary_becomes_a_quickfix_one() {
        let text = include_str!("../../../fix-specs/FIX44.dict");
        let x = quickfix_dictionary(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(x.starts_with("<fix type=\"FIX\" major=\"4\" minor=\"4\""));
        assert!(x.contains("<message name=\"NewOrderSingle\" msgtype=\"D\" msgcat=\"app\">"));
        assert!(x.contains("<field number=\"11\" name=\"ClOrdID\" type=\"STRING\"/>"));
        assert!(x.contains("<group name=\"NoPartyIDs\" required=\"N\">"));
        assert!(x.contains("<field name=\"ClOrdID\" required=\"Y\"/>"));
        assert_eq!(
            x.matches("<message ").count(),
            x.matches("</message>").count()
        );
    }

    #[test]
    fn a_broken_dictionary_is_refused_with_its_line() {
        let e = quickfix_dictionary("version FIX.4.4\nfield x Foo STRING\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(quickfix_dictionary("field 1 A STRING\n").is_err());
    }
}
