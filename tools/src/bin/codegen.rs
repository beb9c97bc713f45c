//! COLD — build tool: compiles our FIX dictionaries (`fix-specs/FIX44.dict`, `FIX42.dict`) into
//! the static tables of `src/fix/generated/` (format: `fix-specs/DICTIONARY-FORMAT.md`).
//!
//! ```text
//! cargo run -p portcullis-tools --bin codegen            # rewrite the generated files
//! cargo run -p portcullis-tools --bin codegen -- --check # fail if they are out of date
//! ```
//!
//! The output is deterministic; a test in this file fails when the checked-in tables differ from
//! what the dictionaries produce, so the two never drift.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use portcullis::fix::dict::MAX_TAG;

/// (dictionary, generated file, BeginString variant), paths relative to the workspace root.
const SPECS: &[(&str, &str, &str)] = &[
    (
        "fix-specs/FIX44.dict",
        "src/fix/generated/fix44.rs",
        "Fix44",
    ),
    (
        "fix-specs/FIX42.dict",
        "src/fix/generated/fix42.rs",
        "Fix42",
    ),
];

#[derive(Parser)]
#[command(about = "Compile fix-specs/*.dict into src/fix/generated/*.rs")]
struct Args {
    /// Do not write; exit 1 if a generated file is missing or differs.
    #[arg(long)]
    check: bool,
    /// Workspace root (default: the parent of the tools crate).
    #[arg(long)]
    root: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let root = args.root.unwrap_or_else(workspace_root);
    let mut ok = true;
    for (dict, out, variant) in SPECS {
        let generated = match generate_file(&root, dict, variant) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let out_path = root.join(out);
        let current = std::fs::read_to_string(&out_path).unwrap_or_default();
        if current == generated {
            println!("{out}: up to date");
        } else if args.check {
            eprintln!(
                "{out}: out of date with {dict}; run cargo run -p portcullis-tools --bin codegen"
            );
            ok = false;
        } else if let Err(e) = std::fs::write(&out_path, generated) {
            eprintln!("{}: {e}", out_path.display());
            return ExitCode::FAILURE;
        } else {
            println!("{out}: written from {dict}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn workspace_root() -> PathBuf {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR"));
    tools.parent().unwrap_or(tools).to_path_buf()
}

fn generate_file(root: &Path, dict: &str, variant: &str) -> Result<String, String> {
    let path = root.join(dict);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let parsed = parse(&text).map_err(|e| format!("{dict}:{e}"))?;
    Ok(render(&parsed, dict, variant))
}

// ------------------------------------------------------------------------------------ model

#[derive(Debug)]
struct Field {
    tag: i32,
    name: String,
    ty: &'static str,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Use {
    tag: i32,
    required: bool,
}

#[derive(Debug)]
struct Group {
    count: Use,
    members: Vec<Use>,
}

#[derive(Debug)]
struct Cond {
    tag: i32,
    when_tag: i32,
    values: Vec<String>,
}

#[derive(Debug)]
struct Msg {
    msg_type: String,
    name: String,
    category: &'static str,
    direction: &'static str,
    fields: Vec<Use>,
    groups: Vec<Group>,
    conds: Vec<Cond>,
}

#[derive(Debug, Default)]
struct Dict {
    version: String,
    fields: BTreeMap<i32, Field>,
    by_name: HashMap<String, i32>,
    header: Vec<Use>,
    trailer: Vec<Use>,
    messages: Vec<Msg>,
    unsupported: Vec<(String, String)>,
}

/// `TYPE` keyword → `FieldType` variant.
const TYPES: &[(&str, &str)] = &[
    ("INT", "Int"),
    ("SEQNUM", "SeqNum"),
    ("LENGTH", "Length"),
    ("NUMINGROUP", "NumInGroup"),
    ("DAYOFMONTH", "DayOfMonth"),
    ("QTY", "Qty"),
    ("PRICE", "Price"),
    ("PRICEOFFSET", "PriceOffset"),
    ("AMT", "Amt"),
    ("PERCENTAGE", "Percentage"),
    ("FLOAT", "Float"),
    ("CHAR", "Char"),
    ("BOOLEAN", "Boolean"),
    ("STRING", "String"),
    ("MULTIPLECHARVALUE", "MultipleCharValue"),
    ("MULTIPLEVALUESTRING", "MultipleValueString"),
    ("CURRENCY", "Currency"),
    ("EXCHANGE", "Exchange"),
    ("COUNTRY", "Country"),
    ("LANGUAGE", "Language"),
    ("DATA", "Data"),
    ("UTCTIMESTAMP", "UtcTimestamp"),
    ("UTCTIMEONLY", "UtcTimeOnly"),
    ("UTCDATEONLY", "UtcDateOnly"),
    ("UTCDATE", "UtcDateOnly"),
    ("LOCALMKTDATE", "LocalMktDate"),
    ("MONTHYEAR", "MonthYear"),
];

/// Packs a MsgType exactly as `portcullis::fix::MsgType::pack` does (sort key of the tables).
fn pack(msg_type: &str) -> u64 {
    msg_type.bytes().fold(0u64, |v, b| (v << 8) | u64::from(b))
}

// ------------------------------------------------------------------------------------ parser

enum Section {
    Top,
    Header,
    Trailer,
    Message(Msg),
    Group(Msg, Group),
}

/// Parses a dictionary; errors are `line: message`.
fn parse(text: &str) -> Result<Dict, String> {
    let mut d = Dict::default();
    let mut section = Section::Top;
    let mut last_field: Option<i32> = None;
    let mut seen_types = BTreeSet::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let words: Vec<&str> = raw
            .split_whitespace()
            .take_while(|w| !w.starts_with('#'))
            .collect();
        let Some((&kw, rest)) = words.split_first() else {
            continue;
        };
        let err = |m: String| format!("{line}: {m}");
        section = match (section, kw) {
            (Section::Top, "version") => {
                let [v] = rest else {
                    return Err(err("version <BeginString>".into()));
                };
                d.version = (*v).to_string();
                Section::Top
            }
            (Section::Top, "field") => {
                let [tag, name, ty] = rest else {
                    return Err(err("field <tag> <Name> <TYPE>".into()));
                };
                let tag: i32 = tag.parse().map_err(|_| err(format!("bad tag {tag}")))?;
                if !(1..=MAX_TAG).contains(&tag) {
                    return Err(err(format!("tag {tag} outside 1..={MAX_TAG}")));
                }
                let ty = TYPES
                    .iter()
                    .find(|(k, _)| k == ty)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| err(format!("unknown type {ty}")))?;
                if d.fields.contains_key(&tag) || d.by_name.contains_key(*name) {
                    return Err(err(format!("field {tag} {name} defined twice")));
                }
                d.by_name.insert((*name).to_string(), tag);
                d.fields.insert(
                    tag,
                    Field {
                        tag,
                        name: (*name).to_string(),
                        ty,
                        values: vec![],
                    },
                );
                last_field = Some(tag);
                Section::Top
            }
            (Section::Top, "value") => {
                let [value, _description] = rest else {
                    return Err(err("value <enum> <Description>".into()));
                };
                let f = last_field
                    .and_then(|t| d.fields.get_mut(&t))
                    .ok_or_else(|| err("value outside a field".into()))?;
                if f.values.iter().any(|v| v == value) {
                    return Err(err(format!("value {value} twice for {}", f.name)));
                }
                if value.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    return Err(err(format!("value {value:?} has a control byte or space")));
                }
                f.values.push((*value).to_string());
                Section::Top
            }
            (Section::Top, "header") if rest.is_empty() => Section::Header,
            (Section::Top, "trailer") if rest.is_empty() => Section::Trailer,
            (Section::Top, "message") => {
                let [msg_type, name, category, direction] = rest else {
                    return Err(err(
                        "message <MsgType> <Name> admin|app inbound|outbound".into()
                    ));
                };
                let category = match *category {
                    "admin" => "Admin",
                    "app" => "App",
                    c => return Err(err(format!("category {c} is not admin|app"))),
                };
                let direction = match *direction {
                    "inbound" => "Inbound",
                    "outbound" => "Outbound",
                    c => return Err(err(format!("direction {c} is not inbound|outbound"))),
                };
                check_msg_type(msg_type, &mut seen_types).map_err(err)?;
                Section::Message(Msg {
                    msg_type: (*msg_type).to_string(),
                    name: (*name).to_string(),
                    category,
                    direction,
                    fields: vec![],
                    groups: vec![],
                    conds: vec![],
                })
            }
            (Section::Top, "unsupported") => {
                let [msg_type, name] = rest else {
                    return Err(err("unsupported <MsgType> <Name>".into()));
                };
                check_msg_type(msg_type, &mut seen_types).map_err(err)?;
                d.unsupported
                    .push(((*msg_type).to_string(), (*name).to_string()));
                Section::Top
            }
            (Section::Header, "req" | "opt") => {
                let u = field_use(&d, kw, rest).map_err(err)?;
                d.header.push(u);
                Section::Header
            }
            (Section::Trailer, "req" | "opt") => {
                let u = field_use(&d, kw, rest).map_err(err)?;
                d.trailer.push(u);
                Section::Trailer
            }
            (Section::Header | Section::Trailer, "end") => Section::Top,
            (Section::Message(mut m), "req" | "opt") => {
                m.fields.push(field_use(&d, kw, rest).map_err(err)?);
                Section::Message(m)
            }
            (Section::Message(m), "group") => {
                let [name, req] = rest else {
                    return Err(err("group <NumInGroupName> req|opt".into()));
                };
                let count = field_use(&d, req, &[name]).map_err(err)?;
                Section::Group(
                    m,
                    Group {
                        count,
                        members: vec![],
                    },
                )
            }
            (Section::Message(mut m), "cond") => {
                let [name, when, values @ ..] = rest else {
                    return Err(err("cond <Field> <WhenField> <value>...".into()));
                };
                let tag = lookup(&d, name).map_err(err)?;
                let when_tag = lookup(&d, when).map_err(err)?;
                if values.is_empty() {
                    return Err(err("cond needs at least one value".into()));
                }
                let values = values.iter().map(|v| (*v).to_string()).collect();
                m.conds.push(Cond {
                    tag,
                    when_tag,
                    values,
                });
                Section::Message(m)
            }
            (Section::Message(m), "end") => {
                d.messages.push(m);
                Section::Top
            }
            (Section::Group(m, mut g), "req" | "opt") => {
                g.members.push(field_use(&d, kw, rest).map_err(err)?);
                Section::Group(m, g)
            }
            (Section::Group(mut m, g), "end") => {
                if g.members.is_empty() || g.members.len() > 64 {
                    return Err(err("a group has 1..=64 members".into()));
                }
                m.fields.push(g.count);
                m.groups.push(g);
                Section::Message(m)
            }
            (Section::Group(..), "group") => {
                return Err(err("nested groups are not supported".into()));
            }
            (_, kw) => return Err(err(format!("unexpected `{kw}` here"))),
        };
    }
    if !matches!(section, Section::Top) {
        return Err("end of file: unclosed section".into());
    }
    check(&d)?;
    Ok(d)
}

fn check_msg_type(msg_type: &str, seen: &mut BTreeSet<String>) -> Result<(), String> {
    if msg_type.is_empty()
        || msg_type.len() > 8
        || !msg_type.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(format!(
            "MsgType {msg_type} is not 1..=8 ASCII letters/digits"
        ));
    }
    if !seen.insert(msg_type.to_string()) {
        return Err(format!("MsgType {msg_type} listed twice"));
    }
    Ok(())
}

fn lookup(d: &Dict, name: &str) -> Result<i32, String> {
    d.by_name
        .get(name)
        .copied()
        .ok_or_else(|| format!("field {name} is not defined (define fields first)"))
}

fn field_use(d: &Dict, kw: &str, rest: &[&str]) -> Result<Use, String> {
    let [name] = rest else {
        return Err(format!("{kw} <FieldName>"));
    };
    let required = match kw {
        "req" => true,
        "opt" => false,
        k => return Err(format!("{k} is not req|opt")),
    };
    Ok(Use {
        tag: lookup(d, name)?,
        required,
    })
}

/// Whole-dictionary consistency: what the tables promise in `src/fix/dict.rs`.
fn check(d: &Dict) -> Result<(), String> {
    if !matches!(d.version.as_str(), "FIX.4.2" | "FIX.4.4") {
        return Err(format!("version {:?} is not FIX.4.2 or FIX.4.4", d.version));
    }
    let name = |t: i32| d.fields.get(&t).map_or("?", |f| f.name.as_str());
    let mut placed = BTreeSet::new();
    for u in d.header.iter().chain(&d.trailer) {
        if !placed.insert(u.tag) {
            return Err(format!("{} is listed twice in header/trailer", name(u.tag)));
        }
    }
    for m in &d.messages {
        let mut seen = BTreeSet::new();
        let members = m.groups.iter().flat_map(|g| &g.members);
        for u in m.fields.iter().chain(members) {
            if placed.contains(&u.tag) {
                return Err(format!(
                    "{}: {} is a header/trailer field",
                    m.name,
                    name(u.tag)
                ));
            }
            if !seen.insert(u.tag) {
                return Err(format!(
                    "{}: {} appears twice (fields and groups included)",
                    m.name,
                    name(u.tag)
                ));
            }
        }
        for g in &m.groups {
            let ty = d.fields.get(&g.count.tag).map_or("", |f| f.ty);
            if !matches!(ty, "NumInGroup" | "Int") {
                return Err(format!(
                    "{}: group count {} is not NUMINGROUP/INT",
                    m.name,
                    name(g.count.tag)
                ));
            }
        }
        for c in &m.conds {
            if !m.fields.iter().any(|u| u.tag == c.tag)
                || !m.fields.iter().any(|u| u.tag == c.when_tag)
            {
                return Err(format!(
                    "{}: cond fields must be top-level fields of the message",
                    m.name
                ));
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------ renderer

fn bytes_lit(v: &str) -> String {
    let mut s = String::from("b\"");
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn sorted_values(values: &[String]) -> Vec<&String> {
    let mut v: Vec<&String> = values.iter().collect();
    v.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    v
}

fn values_lit(values: &[String]) -> String {
    let parts: Vec<String> = sorted_values(values).iter().map(|v| bytes_lit(v)).collect();
    format!("&[{}]", parts.join(", "))
}

fn uses_lit(d: &Dict, uses: &[Use], sort: bool, indent: &str) -> String {
    let mut uses = uses.to_vec();
    if sort {
        uses.sort_by_key(|u| u.tag);
    }
    let mut s = String::from("&[\n");
    for u in &uses {
        let name = d.fields.get(&u.tag).map_or("?", |f| f.name.as_str());
        let _ = writeln!(
            s,
            "{indent}    FieldRef {{ tag: {}, required: {} }}, // {name}",
            u.tag, u.required
        );
    }
    let _ = write!(s, "{indent}]");
    s
}

fn render(d: &Dict, source: &str, variant: &str) -> String {
    let mut o = String::new();
    let place = |tag: i32| {
        if d.header.iter().any(|u| u.tag == tag) {
            "Header"
        } else if d.trailer.iter().any(|u| u.tag == tag) {
            "Trailer"
        } else {
            "Body"
        }
    };
    let _ = writeln!(
        o,
        "// @generated by tools/codegen from {source} — do not edit"
    );
    let _ = writeln!(
        o,
        "//! {} dictionary tables; invariants in `crate::fix::dict`.",
        d.version
    );
    o.push('\n');
    o.push_str("use crate::fix::decode::MsgType;\n");
    o.push_str("use crate::fix::dict::{\n");
    o.push_str("    Category, Condition, Dictionary, Direction, FieldDef, FieldRef, FieldType, GroupDef,\n");
    o.push_str("    KnownType, MessageDef, Place,\n");
    o.push_str("};\n");
    o.push_str("use crate::fix::BeginString;\n\n");
    o.push_str("pub static DICTIONARY: Dictionary = Dictionary {\n");
    let _ = writeln!(o, "    version: BeginString::{variant},");
    o.push_str("    fields: FIELDS,\n    field_index: &FIELD_INDEX,\n    header: HEADER,\n");
    o.push_str(
        "    trailer: TRAILER,\n    messages: MESSAGES,\n    unsupported: UNSUPPORTED,\n};\n\n",
    );

    // Fields, sorted by tag (BTreeMap order).
    o.push_str("static FIELDS: &[FieldDef] = &[\n");
    for f in d.fields.values() {
        let _ = writeln!(
            o,
            "    FieldDef {{ tag: {}, name: \"{}\", ty: FieldType::{}, place: Place::{}, values: {} }},",
            f.tag,
            f.name,
            f.ty,
            place(f.tag),
            values_lit(&f.values)
        );
    }
    o.push_str("];\n\n");

    // Dense tag → FIELDS position + 1.
    let max = d.fields.keys().next_back().copied().unwrap_or(0);
    let len = usize::try_from(max).unwrap_or(0) + 1;
    let mut index = vec![0u16; len];
    for (i, tag) in d.fields.keys().enumerate() {
        if let (Ok(slot), Ok(pos)) = (usize::try_from(*tag), u16::try_from(i + 1)) {
            index[slot] = pos;
        }
    }
    let _ = writeln!(
        o,
        "/// FIELDS position + 1 by tag; 0 = not in the dictionary."
    );
    let _ = writeln!(o, "static FIELD_INDEX: [u16; {len}] = [");
    for chunk in index.chunks(16) {
        let row: Vec<String> = chunk.iter().map(u16::to_string).collect();
        let _ = writeln!(o, "    {},", row.join(", "));
    }
    o.push_str("];\n\n");

    let _ = writeln!(
        o,
        "static HEADER: &[FieldRef] = {};\n",
        uses_lit(d, &d.header, true, "")
    );
    let _ = writeln!(
        o,
        "static TRAILER: &[FieldRef] = {};\n",
        uses_lit(d, &d.trailer, true, "")
    );

    let mut messages: Vec<&Msg> = d.messages.iter().collect();
    messages.sort_by_key(|m| pack(&m.msg_type));
    o.push_str("static MESSAGES: &[MessageDef] = &[\n");
    for m in messages {
        o.push_str("    MessageDef {\n");
        let _ = writeln!(
            o,
            "        msg_type: MsgType::pack({}),",
            bytes_lit(&m.msg_type)
        );
        let _ = writeln!(o, "        name: \"{}\",", m.name);
        let _ = writeln!(o, "        category: Category::{},", m.category);
        let _ = writeln!(o, "        direction: Direction::{},", m.direction);
        let _ = writeln!(
            o,
            "        fields: {},",
            uses_lit(d, &m.fields, true, "        ")
        );
        let mut groups: Vec<&Group> = m.groups.iter().collect();
        groups.sort_by_key(|g| g.count.tag);
        o.push_str("        groups: &[\n");
        for g in groups {
            let name = d.fields.get(&g.count.tag).map_or("?", |f| f.name.as_str());
            let _ = writeln!(o, "            GroupDef {{ // {name}");
            let _ = writeln!(o, "                count_tag: {},", g.count.tag);
            let _ = writeln!(o, "                required: {},", g.count.required);
            let _ = writeln!(
                o,
                "                members: {},",
                uses_lit(d, &g.members, false, "                ")
            );
            o.push_str("            },\n");
        }
        o.push_str("        ],\n");
        o.push_str("        conditions: &[\n");
        for c in &m.conds {
            let _ = writeln!(
                o,
                "            Condition {{ tag: {}, when_tag: {}, when_values: {} }},",
                c.tag,
                c.when_tag,
                values_lit(&c.values)
            );
        }
        o.push_str("        ],\n");
        o.push_str("    },\n");
    }
    o.push_str("];\n\n");

    let mut unsupported: Vec<&(String, String)> = d.unsupported.iter().collect();
    unsupported.sort_by_key(|(t, _)| pack(t));
    o.push_str("static UNSUPPORTED: &[KnownType] = &[\n");
    for (t, name) in unsupported {
        let _ = writeln!(
            o,
            "    KnownType {{ msg_type: MsgType::pack({}), name: \"{name}\" }},",
            bytes_lit(t)
        );
    }
    o.push_str("];\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_tables_match_the_dictionaries() {
        let root = workspace_root();
        for (dict, out, variant) in SPECS {
            let generated = generate_file(&root, dict, variant).unwrap();
            let current = std::fs::read_to_string(root.join(out)).unwrap();
            assert!(
                current == generated,
                "{out} drifted from {dict}: run `cargo run -p portcullis-tools --bin codegen`"
            );
        }
    }

    const MINI: &str = "version FIX.4.4\nfield 8 BeginString STRING\nfield 10 CheckSum STRING\n\
        field 54 Side CHAR\n  value 2 Sell\n  value 1 Buy # comment\n\
        header\n req BeginString\nend\ntrailer\n req CheckSum\nend\n";

    #[test]
    fn parses_fields_enums_and_sections() {
        let d = parse(MINI).unwrap();
        assert_eq!(d.fields.len(), 3);
        assert_eq!(d.fields[&54].values, ["2", "1"]);
        let out = render(&d, "mini", "Fix44");
        assert!(out.starts_with("// @generated by tools/codegen from mini — do not edit\n"));
        assert!(
            out.contains("values: &[b\"1\", b\"2\"]"),
            "values are sorted"
        );
    }

    #[test]
    fn rejects_inconsistent_dictionaries() {
        let bad = [
            "field 1 A STRING\n",                                          // no version
            "version FIX.4.4\nfield 1 A WIDGET\n",                         // unknown type
            "version FIX.4.4\nfield 8192 A STRING\n",                      // above MAX_TAG
            "version FIX.4.4\nfield 1 A STRING\nfield 1 B STRING\n",       // duplicate tag
            "version FIX.4.4\nmessage D X app inbound\n req Nope\nend\n",  // unknown field
            "version FIX.4.4\nunsupported S Q\nunsupported S Q\n",         // duplicate type
            "version FIX.4.4\nmessage D X app sideways\nend\n",            // bad direction
            "version FIX.4.4\nfield 1 A STRING\nmessage D X app inbound\n req A\n opt A\nend\n",
            "version FIX.4.4\nfield 1 A INT\nfield 2 B STRING\nmessage D X app inbound\n group A opt\n  opt B\n  group A opt\n",
            "version FIX.4.4\nmessage D X app inbound\n",                  // unclosed
        ];
        for text in bad {
            assert!(parse(text).is_err(), "accepted: {text}");
        }
    }
}
