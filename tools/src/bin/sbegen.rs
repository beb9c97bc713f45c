//! COLD — build tool: compiles FIX Simple Binary Encoding 1.0 XML schemas into the flyweight
//! codecs of `src/sbe/` (our schema `fix-specs/sbe/portcullis-sbe.xml` → `src/sbe/generated.rs`
//! and the layout tables `fix-specs/sbe/LAYOUT.md`; the standard's worked example
//! `fix-specs/sbe/golden/sbe-standard-example.xml` → `src/sbe/golden_generated.rs`).
//!
//! ```text
//! cargo run -p portcullis-tools --bin sbegen            # rewrite the generated files
//! cargo run -p portcullis-tools --bin sbegen -- --check # fail if they are out of date
//! ```
//!
//! What it accepts (and refuses with a message naming the element): `<type>` of a primitive
//! (char, int8..int64, uint8..uint64) with `presence` required/optional/constant and an optional
//! `nullValue`, char and uint8 arrays (`length`), `<composite>` of primitive members, `<enum>`
//! over char/uint8/uint16 (directly or through a named type), and `<sbe:message>` with fields at
//! explicit `offset`s inside `blockLength`, none overlapping. Repeating groups, variable-length
//! data, `<set>` and `sinceVersion` are refused: the gateway's messages are flat so the hot path
//! reads every field at a constant offset.
//!
//! The output is deterministic; a test in this file fails when the checked-in files differ from
//! what the schemas produce, so the two never drift.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

/// (schema, generated Rust file, generated layout document or ""), relative to the workspace.
const SPECS: &[(&str, &str, &str)] = &[
    (
        "fix-specs/sbe/portcullis-sbe.xml",
        "src/sbe/generated.rs",
        "fix-specs/sbe/LAYOUT.md",
    ),
    (
        "fix-specs/sbe/golden/sbe-standard-example.xml",
        "src/sbe/golden_generated.rs",
        "",
    ),
];

#[derive(Parser)]
#[command(about = "Compile fix-specs/sbe/*.xml into src/sbe/*generated.rs")]
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
    for (schema, rs, md) in SPECS {
        let (code, layout) = match generate(&root, schema) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let mut outputs = vec![(*rs, code)];
        if !md.is_empty() {
            outputs.push((*md, layout));
        }
        for (out, text) in outputs {
            let path = root.join(out);
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current == text {
                println!("{out}: up to date");
            } else if args.check {
                eprintln!(
                    "{out}: out of date with {schema}; run cargo run -p portcullis-tools --bin sbegen"
                );
                ok = false;
            } else if let Err(e) = std::fs::write(&path, text) {
                eprintln!("{}: {e}", path.display());
                return ExitCode::FAILURE;
            } else {
                println!("{out}: written from {schema}");
            }
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

/// The Rust module and the layout document generated from `schema`.
fn generate(root: &Path, schema: &str) -> Result<(String, String), String> {
    let path = root.join(schema);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let s = parse(&text).map_err(|e| format!("{schema}: {e}"))?;
    Ok((render(&s, schema), render_layout(&s, schema)))
}

// ------------------------------------------------------------------------------------ model

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prim {
    Char,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

impl Prim {
    fn parse(s: &str) -> Option<Prim> {
        Some(match s {
            "char" => Prim::Char,
            "int8" => Prim::I8,
            "int16" => Prim::I16,
            "int32" => Prim::I32,
            "int64" => Prim::I64,
            "uint8" => Prim::U8,
            "uint16" => Prim::U16,
            "uint32" => Prim::U32,
            "uint64" => Prim::U64,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Prim::Char | Prim::I8 | Prim::U8 => 1,
            Prim::I16 | Prim::U16 => 2,
            Prim::I32 | Prim::U32 => 4,
            Prim::I64 | Prim::U64 => 8,
        }
    }
    /// The Rust type (char reads as `u8`).
    fn rust(self) -> &'static str {
        match self {
            Prim::Char | Prim::U8 => "u8",
            Prim::I8 => "i8",
            Prim::I16 => "i16",
            Prim::I32 => "i32",
            Prim::I64 => "i64",
            Prim::U16 => "u16",
            Prim::U32 => "u32",
            Prim::U64 => "u64",
        }
    }
    fn xml(self) -> &'static str {
        match self {
            Prim::Char => "char",
            Prim::I8 => "int8",
            Prim::I16 => "int16",
            Prim::I32 => "int32",
            Prim::I64 => "int64",
            Prim::U8 => "uint8",
            Prim::U16 => "uint16",
            Prim::U32 => "uint32",
            Prim::U64 => "uint64",
        }
    }
    /// The SBE 1.0 default null value, as a Rust expression.
    fn default_null(self) -> &'static str {
        match self {
            Prim::Char => "0",
            Prim::I8 => "i8::MIN",
            Prim::I16 => "i16::MIN",
            Prim::I32 => "i32::MIN",
            Prim::I64 => "i64::MIN",
            Prim::U8 => "u8::MAX",
            Prim::U16 => "u16::MAX",
            Prim::U32 => "u32::MAX",
            Prim::U64 => "u64::MAX",
        }
    }
    /// `v` (schema text) as a Rust literal of this type.
    fn literal(self, v: &str) -> Result<String, String> {
        let v = v.trim();
        let ok = match self {
            Prim::Char => {
                return if v.len() == 1 && v.bytes().all(|b| b.is_ascii_graphic()) {
                    Ok(format!("b'{v}'"))
                } else {
                    Err(format!("char value {v:?} is not one printable character"))
                };
            }
            Prim::I8 => v.parse::<i8>().is_ok(),
            Prim::I16 => v.parse::<i16>().is_ok(),
            Prim::I32 => v.parse::<i32>().is_ok(),
            Prim::I64 => v.parse::<i64>().is_ok(),
            Prim::U8 => v.parse::<u8>().is_ok(),
            Prim::U16 => v.parse::<u16>().is_ok(),
            Prim::U32 => v.parse::<u32>().is_ok(),
            Prim::U64 => v.parse::<u64>().is_ok(),
        };
        if ok {
            Ok(v.to_string())
        } else {
            Err(format!("value {v:?} does not fit {}", self.xml()))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Presence {
    Required,
    /// Optional with this null value (a Rust expression).
    Optional(String),
    /// Constant with this value (a Rust literal); not on the wire.
    Constant(String),
}

#[derive(Debug, Clone)]
struct Member {
    name: String,
    prim: Prim,
    presence: Presence,
}

#[derive(Debug, Clone)]
enum Encoding {
    Scalar {
        prim: Prim,
        presence: Presence,
    },
    Array {
        prim: Prim,
        length: usize,
    },
    Composite {
        members: Vec<Member>,
    },
    Enum {
        prim: Prim,
        values: Vec<(String, String)>,
    },
}

impl Encoding {
    fn size(&self) -> usize {
        match self {
            Encoding::Scalar { prim, presence } => {
                if matches!(presence, Presence::Constant(_)) {
                    0
                } else {
                    prim.size()
                }
            }
            Encoding::Array { prim, length } => prim.size() * length,
            Encoding::Composite { members } => members
                .iter()
                .filter(|m| !matches!(m.presence, Presence::Constant(_)))
                .map(|m| m.prim.size())
                .sum(),
            Encoding::Enum { prim, .. } => prim.size(),
        }
    }
    fn describe(&self) -> String {
        match self {
            Encoding::Scalar { prim, presence } => match presence {
                Presence::Required => prim.xml().to_string(),
                Presence::Optional(n) => format!("{} (null {n})", prim.xml()),
                Presence::Constant(v) => format!("constant {v}"),
            },
            Encoding::Array { prim, length } => format!("{}[{length}]", prim.xml()),
            Encoding::Composite { members } => members
                .iter()
                .map(|m| match &m.presence {
                    Presence::Required => format!("{} {}", m.name, m.prim.xml()),
                    Presence::Optional(n) => format!("{} {} (null {n})", m.name, m.prim.xml()),
                    Presence::Constant(v) => format!("{} = {v}", m.name),
                })
                .collect::<Vec<_>>()
                .join(", "),
            Encoding::Enum { prim, .. } => format!("enum {}", prim.xml()),
        }
    }
}

#[derive(Debug)]
struct Type {
    name: String,
    enc: Encoding,
    description: String,
}

#[derive(Debug)]
struct Field {
    name: String,
    id: u32,
    ty: String,
    offset: usize,
    description: String,
}

#[derive(Debug)]
struct Msg {
    name: String,
    id: u16,
    block_length: usize,
    semantic_type: String,
    description: String,
    fields: Vec<Field>,
}

#[derive(Debug)]
struct Schema {
    package: String,
    id: u16,
    version: u16,
    types: BTreeMap<String, Type>,
    /// Type names in schema order.
    order: Vec<String>,
    header_length: usize,
    messages: Vec<Msg>,
}

// ------------------------------------------------------------------------------------ parse

fn attr<'a>(n: roxmltree::Node<'a, '_>, name: &str) -> Result<&'a str, String> {
    n.attribute(name).ok_or_else(|| {
        format!(
            "line {}: <{}> without {name}=",
            line(n),
            n.tag_name().name()
        )
    })
}

fn line(n: roxmltree::Node<'_, '_>) -> u32 {
    n.document().text_pos_at(n.range().start).row
}

fn number<T: std::str::FromStr>(n: roxmltree::Node<'_, '_>, name: &str) -> Result<T, String> {
    let v = attr(n, name)?;
    v.trim()
        .parse()
        .map_err(|_| format!("line {}: {name}={v:?} is not a valid number", line(n)))
}

fn presence_of(n: roxmltree::Node<'_, '_>, prim: Prim) -> Result<Presence, String> {
    let text = n.text().unwrap_or("").trim();
    match n.attribute("presence").unwrap_or("required") {
        "required" => Ok(Presence::Required),
        "optional" => Ok(Presence::Optional(match n.attribute("nullValue") {
            Some(v) => prim
                .literal(v)
                .map_err(|e| format!("line {}: {e}", line(n)))?,
            None => prim.default_null().to_string(),
        })),
        "constant" => Ok(Presence::Constant(
            prim.literal(text)
                .map_err(|e| format!("line {}: constant: {e}", line(n)))?,
        )),
        p => Err(format!("line {}: unknown presence {p:?}", line(n))),
    }
}

fn parse(text: &str) -> Result<Schema, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "messageSchema" {
        return Err("the root element is not <sbe:messageSchema>".into());
    }
    if root.attribute("byteOrder").unwrap_or("littleEndian") != "littleEndian" {
        return Err("only byteOrder=\"littleEndian\" is supported".into());
    }
    let mut s = Schema {
        package: attr(root, "package")?.to_string(),
        id: number(root, "id")?,
        version: match root.attribute("version") {
            Some(_) => number(root, "version")?,
            None => 0,
        },
        types: BTreeMap::new(),
        order: Vec::new(),
        header_length: 0,
        messages: Vec::new(),
    };
    // Named types first (enums may name a type as their encoding), then composites and enums.
    let types: Vec<_> = root
        .children()
        .filter(|n| n.tag_name().name() == "types")
        .flat_map(|t| t.children().filter(|n| n.is_element()))
        .collect();
    for pass in 0..2 {
        for n in &types {
            let kind = n.tag_name().name();
            if (pass == 0) != (kind == "type") {
                continue;
            }
            let name = attr(*n, "name")?.to_string();
            let enc = match kind {
                "type" => parse_type(*n)?,
                "composite" => parse_composite(*n)?,
                "enum" => parse_enum(*n, &s.types)?,
                other => {
                    return Err(format!(
                        "line {}: <{other}> is not supported (flat messages only)",
                        line(*n)
                    ))
                }
            };
            let t = Type {
                name: name.clone(),
                enc,
                description: n.attribute("description").unwrap_or("").to_string(),
            };
            if s.types.insert(name.clone(), t).is_some() {
                return Err(format!("line {}: type {name} defined twice", line(*n)));
            }
            s.order.push(name);
        }
    }
    s.header_length = check_header(&s.types)?;
    let mut ids = BTreeSet::new();
    let mut names = BTreeSet::new();
    for m in root.children().filter(|n| n.tag_name().name() == "message") {
        let msg = parse_message(m, &s.types)?;
        if !ids.insert(msg.id) || !names.insert(msg.name.clone()) {
            return Err(format!(
                "line {}: message id {} or name {} used twice",
                line(m),
                msg.id,
                msg.name
            ));
        }
        s.messages.push(msg);
    }
    if s.messages.is_empty() {
        return Err("no <sbe:message>".into());
    }
    Ok(s)
}

fn parse_type(n: roxmltree::Node<'_, '_>) -> Result<Encoding, String> {
    let p = attr(n, "primitiveType")?;
    let prim =
        Prim::parse(p).ok_or_else(|| format!("line {}: unknown primitiveType {p:?}", line(n)))?;
    let length: usize = match n.attribute("length") {
        Some(_) => number(n, "length")?,
        None => 1,
    };
    if length == 1 {
        return Ok(Encoding::Scalar {
            prim,
            presence: presence_of(n, prim)?,
        });
    }
    if length == 0 || !matches!(prim, Prim::Char | Prim::U8) || n.attribute("presence").is_some() {
        return Err(format!(
            "line {}: arrays must be char or uint8 with a length of at least 2 (no variable data)",
            line(n)
        ));
    }
    Ok(Encoding::Array { prim, length })
}

fn parse_composite(n: roxmltree::Node<'_, '_>) -> Result<Encoding, String> {
    let mut members = Vec::new();
    for m in n.children().filter(|c| c.is_element()) {
        if m.tag_name().name() != "type" || m.attribute("length").is_some_and(|l| l != "1") {
            return Err(format!(
                "line {}: composite members must be scalar <type>s",
                line(m)
            ));
        }
        let p = attr(m, "primitiveType")?;
        let prim = Prim::parse(p)
            .ok_or_else(|| format!("line {}: unknown primitiveType {p:?}", line(m)))?;
        members.push(Member {
            name: attr(m, "name")?.to_string(),
            prim,
            presence: presence_of(m, prim)?,
        });
    }
    if members.is_empty() {
        return Err(format!("line {}: empty composite", line(n)));
    }
    Ok(Encoding::Composite { members })
}

fn parse_enum(
    n: roxmltree::Node<'_, '_>,
    types: &BTreeMap<String, Type>,
) -> Result<Encoding, String> {
    let e = attr(n, "encodingType")?;
    let prim = match Prim::parse(e) {
        Some(p) => p,
        None => match types.get(e).map(|t| &t.enc) {
            Some(Encoding::Scalar {
                prim,
                presence: Presence::Required,
            }) => *prim,
            _ => {
                return Err(format!(
                    "line {}: encodingType {e:?} is neither a primitive nor a required scalar type",
                    line(n)
                ))
            }
        },
    };
    if !matches!(prim, Prim::Char | Prim::U8 | Prim::U16) {
        return Err(format!(
            "line {}: enums are encoded as char, uint8 or uint16",
            line(n)
        ));
    }
    let mut values = Vec::new();
    let mut seen = BTreeSet::new();
    for v in n.children().filter(|c| c.is_element()) {
        if v.tag_name().name() != "validValue" {
            return Err(format!("line {}: expected <validValue>", line(v)));
        }
        let name = attr(v, "name")?.to_string();
        let lit = prim
            .literal(v.text().unwrap_or(""))
            .map_err(|e| format!("line {}: {e}", line(v)))?;
        if is_default_null(prim, &lit) {
            return Err(format!("line {}: {name} uses the null value", line(v)));
        }
        if !seen.insert(lit.clone()) || values.iter().any(|(n, _)| *n == name) {
            return Err(format!(
                "line {}: value or name of {name} repeated",
                line(v)
            ));
        }
        values.push((name, lit));
    }
    if values.is_empty() {
        return Err(format!("line {}: enum without values", line(n)));
    }
    Ok(Encoding::Enum { prim, values })
}

/// Whether the literal `lit` is the SBE default null value of `prim` (enums may not use it).
fn is_default_null(prim: Prim, lit: &str) -> bool {
    match prim {
        Prim::Char => lit == "b'\\0'",
        Prim::U8 => lit == "255",
        Prim::U16 => lit == "65535",
        _ => false,
    }
}

/// The `messageHeader` composite must be the four uint16 of SBE 1.0; returns its length.
fn check_header(types: &BTreeMap<String, Type>) -> Result<usize, String> {
    let ok = match types.get("messageHeader").map(|t| &t.enc) {
        Some(Encoding::Composite { members }) => {
            members.len() == 4
                && members
                    .iter()
                    .zip(["blockLength", "templateId", "schemaId", "version"])
                    .all(|(m, n)| {
                        m.name == n && m.prim == Prim::U16 && m.presence == Presence::Required
                    })
        }
        _ => false,
    };
    if ok {
        Ok(8)
    } else {
        Err("messageHeader must be the composite blockLength, templateId, schemaId, version (uint16 each)".into())
    }
}

fn parse_message(
    m: roxmltree::Node<'_, '_>,
    types: &BTreeMap<String, Type>,
) -> Result<Msg, String> {
    let name = attr(m, "name")?.to_string();
    let mut msg = Msg {
        id: number(m, "id")?,
        block_length: number(m, "blockLength")?,
        semantic_type: m.attribute("semanticType").unwrap_or("").to_string(),
        description: m.attribute("description").unwrap_or("").to_string(),
        fields: Vec::new(),
        name,
    };
    let mut end = 0usize;
    let mut names = BTreeSet::new();
    for f in m.children().filter(|c| c.is_element()) {
        let at = format!("line {}: {}", line(f), msg.name);
        if f.tag_name().name() != "field" {
            return Err(format!(
                "{at}: <{}> is not supported (flat messages only)",
                f.tag_name().name()
            ));
        }
        if f.attribute("sinceVersion").is_some() || f.attribute("presence").is_some() {
            return Err(format!(
                "{at}: sinceVersion/presence on a field is not supported; put presence on the type"
            ));
        }
        let fname = attr(f, "name")?.to_string();
        let ty = attr(f, "type")?.to_string();
        let t = types
            .get(&ty)
            .ok_or_else(|| format!("{at}.{fname}: unknown type {ty:?}"))?;
        if matches!(
            t.enc,
            Encoding::Scalar {
                presence: Presence::Constant(_),
                ..
            }
        ) {
            return Err(format!("{at}.{fname}: constant fields are not supported"));
        }
        let offset: usize = number(f, "offset")?;
        if offset < end {
            return Err(format!(
                "{at}.{fname}: offset {offset} overlaps the previous field (ends at {end})"
            ));
        }
        end = offset + t.enc.size();
        if end > msg.block_length {
            return Err(format!(
                "{at}.{fname}: ends at {end}, beyond blockLength {}",
                msg.block_length
            ));
        }
        if !names.insert(snake(&fname)) {
            return Err(format!("{at}.{fname}: field name repeated"));
        }
        msg.fields.push(Field {
            id: number(f, "id")?,
            ty,
            offset,
            description: f.attribute("description").unwrap_or("").to_string(),
            name: fname,
        });
    }
    if msg.block_length > usize::from(u16::MAX) {
        return Err(format!("{}: blockLength above 65535", msg.name));
    }
    Ok(msg)
}

// ------------------------------------------------------------------------------------ render

/// `clOrdID` → `cl_ord_id`, `previousUUID` → `previous_uuid`, `TransactTime` → `transact_time`.
fn snake(name: &str) -> String {
    let c: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &ch) in c.iter().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            let prev = c[i - 1];
            let next_lower = c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// `ordTypeEnum` → `OrdTypeEnum`.
fn pascal(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn doc(o: &mut String, indent: &str, text: &str) {
    for l in text.lines() {
        let _ = writeln!(o, "{indent}///{}{}", if l.is_empty() { "" } else { " " }, l);
    }
}

fn render(s: &Schema, source: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "// @generated by tools/sbegen from {source} — do not edit"
    );
    o.push_str("//! HOT — flyweight codecs generated from the SBE schema named above: a decoder view and an\n");
    o.push_str("//! encoder per message over byte slices, with fixed offsets, no allocation and no panics (every\n");
    o.push_str(
        "//! read goes through `wire`, which answers a default for bytes beyond the slice; the\n",
    );
    o.push_str("//! constructors check the length once so that never happens).\n\n");
    o.push_str("use super::wire;\nuse super::SbeError;\n\n");
    let _ = writeln!(o, "/// The schema's `package`.");
    let _ = writeln!(o, "pub const PACKAGE: &str = {:?};", s.package);
    let _ = writeln!(o, "/// The schema's `id`: every message header carries it.");
    let _ = writeln!(o, "pub const SCHEMA_ID: u16 = {};", s.id);
    let _ = writeln!(
        o,
        "/// The schema's `version`: the newest version this code reads."
    );
    let _ = writeln!(o, "pub const SCHEMA_VERSION: u16 = {};", s.version);
    let _ = writeln!(
        o,
        "/// Length of `messageHeader` (blockLength, templateId, schemaId, version)."
    );
    let _ = writeln!(o, "pub const HEADER_LENGTH: usize = {};\n", s.header_length);

    for name in &s.order {
        let t = &s.types[name];
        if let Encoding::Enum { prim, values } = &t.enc {
            render_enum(&mut o, t, *prim, values);
        }
    }
    for m in &s.messages {
        render_decoder(&mut o, s, m);
        render_encoder(&mut o, s, m);
    }
    render_dispatch(&mut o, s);
    render_tests(&mut o, s);
    o
}

fn render_enum(o: &mut String, t: &Type, prim: Prim, values: &[(String, String)]) {
    let ty = pascal(&t.name);
    let r = prim.rust();
    if !t.description.is_empty() {
        doc(o, "", &t.description);
    }
    let _ = writeln!(o, "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]");
    let _ = writeln!(o, "#[repr({r})]");
    let _ = writeln!(o, "pub enum {ty} {{");
    for (n, v) in values {
        let _ = writeln!(o, "    {n} = {v},");
    }
    o.push_str("}\n\n");
    let _ = writeln!(o, "impl {ty} {{");
    let _ = writeln!(o, "    /// Every value, in schema order.");
    let _ = writeln!(o, "    pub const ALL: [{ty}; {}] = [", values.len());
    for (n, _) in values {
        let _ = writeln!(o, "        {ty}::{n},");
    }
    o.push_str("    ];\n");
    let _ = writeln!(
        o,
        "    /// `None` for a value the schema does not list (and for null)."
    );
    let _ = writeln!(o, "    pub const fn from_{r}(v: {r}) -> Option<{ty}> {{");
    o.push_str("        match v {\n");
    for (n, v) in values {
        let _ = writeln!(o, "            {v} => Some({ty}::{n}),");
    }
    o.push_str("            _ => None,\n        }\n    }\n");
    let _ = writeln!(o, "    pub const fn to_{r}(self) -> {r} {{");
    o.push_str("        self as ");
    o.push_str(r);
    o.push_str("\n    }\n}\n\n");
}

/// The field table in a message's doc comment.
fn layout_doc(o: &mut String, s: &Schema, m: &Msg) {
    let _ = writeln!(o, "///");
    let _ = writeln!(o, "/// ```text");
    let _ = writeln!(o, "/// offset size  field (id)  type");
    for f in &m.fields {
        let t = &s.types[&f.ty];
        let _ = writeln!(
            o,
            "/// {:>6} {:>4}  {} ({})  {}",
            f.offset,
            t.enc.size(),
            f.name,
            f.id,
            f.ty
        );
    }
    let _ = writeln!(o, "/// blockLength {}", m.block_length);
    let _ = writeln!(o, "/// ```");
}

fn consts(o: &mut String, m: &Msg) {
    let _ = writeln!(o, "    /// templateId in the message header.");
    let _ = writeln!(o, "    pub const TEMPLATE_ID: u16 = {};", m.id);
    let _ = writeln!(
        o,
        "    /// blockLength of the root block at this schema version."
    );
    let _ = writeln!(o, "    pub const BLOCK_LENGTH: u16 = {};", m.block_length);
    let _ = writeln!(o, "    pub const SCHEMA_ID: u16 = SCHEMA_ID;");
    let _ = writeln!(o, "    pub const SCHEMA_VERSION: u16 = SCHEMA_VERSION;");
}

fn field_doc(o: &mut String, f: &Field) {
    let text = if f.description.is_empty() {
        format!("`{}` ({})", f.name, f.id)
    } else {
        format!("`{}` ({}): {}", f.name, f.id, f.description)
    };
    doc(o, "    ", &text);
}

fn render_decoder(o: &mut String, s: &Schema, m: &Msg) {
    let ty = format!("{}Decoder", pascal(&m.name));
    let what = if m.description.is_empty() {
        m.name.clone()
    } else {
        format!("{}: {}", m.name, m.description)
    };
    doc(o, "", &format!("Reads {what} (templateId {}).", m.id));
    layout_doc(o, s, m);
    let _ = writeln!(o, "#[derive(Clone, Copy, Debug)]");
    let _ = writeln!(
        o,
        "pub struct {ty}<'a> {{\n    /// Our fields: a fixed-size view, so the getters' offsets are checked at compile time.\n    buf: &'a [u8; {bl}],\n    /// The whole block as sent (longer from a newer minor version).\n    block: &'a [u8],\n}}\n",
        bl = m.block_length
    );
    let _ = writeln!(o, "impl<'a> {ty}<'a> {{");
    consts(o, m);
    // Constant composite members, as associated constants.
    for f in &m.fields {
        if let Encoding::Composite { members } = &s.types[&f.ty].enc {
            for mem in members {
                if let Presence::Constant(v) = &mem.presence {
                    let _ = writeln!(
                        o,
                        "    /// Constant `{}` of `{}` (not on the wire).",
                        mem.name, f.name
                    );
                    let _ = writeln!(
                        o,
                        "    pub const {}_{}: {} = {v};",
                        snake(&f.name).to_ascii_uppercase(),
                        snake(&mem.name).to_ascii_uppercase(),
                        mem.prim.rust()
                    );
                }
            }
        }
    }
    o.push_str("\n    /// A view of the root block `buf` (the bytes after the message header); `buf` may be\n");
    o.push_str("    /// longer than [`Self::BLOCK_LENGTH`] (a block from a newer minor version), never shorter.\n");
    o.push_str("    pub fn wrap(buf: &'a [u8]) -> Result<Self, SbeError> {\n");
    let _ = writeln!(
        o,
        "        match buf.first_chunk::<{}>() {{",
        m.block_length
    );
    o.push_str("            Some(fixed) => Ok(Self { buf: fixed, block: buf }),\n");
    o.push_str("            None => Err(SbeError::Short {\n                len: buf.len(),\n                need: Self::BLOCK_LENGTH as usize,\n            }),\n        }\n    }\n\n");
    o.push_str("    /// The root block as wrapped.\n    pub fn block(&self) -> &'a [u8] {\n        self.block\n    }\n");
    for f in &m.fields {
        let t = &s.types[&f.ty];
        let n = snake(&f.name);
        let at = f.offset;
        o.push('\n');
        match &t.enc {
            Encoding::Scalar { prim, presence } => {
                field_doc(o, f);
                getter(o, &n, *prim, presence, at);
            }
            Encoding::Array {
                prim: Prim::Char,
                length,
            } => {
                field_doc(o, f);
                let _ = writeln!(
                    o,
                    "    /// The characters before the first NUL (at most {length})."
                );
                let _ = writeln!(o, "    #[inline]");
                let _ = writeln!(o, "    pub fn {n}(&self) -> &'a [u8] {{");
                let _ = writeln!(o, "        wire::str_at(self.buf, {at}, {length})");
                o.push_str("    }\n");
            }
            Encoding::Array { length, .. } => {
                field_doc(o, f);
                let _ = writeln!(o, "    #[inline]");
                let _ = writeln!(o, "    pub fn {n}(&self) -> [u8; {length}] {{");
                let _ = writeln!(o, "        wire::bytes_at::<{length}>(self.buf, {at})");
                o.push_str("    }\n");
            }
            Encoding::Composite { members } => {
                let live: Vec<&Member> = members
                    .iter()
                    .filter(|m| !matches!(m.presence, Presence::Constant(_)))
                    .collect();
                let mut off = at;
                for mem in members {
                    if matches!(mem.presence, Presence::Constant(_)) {
                        continue;
                    }
                    field_doc(o, f);
                    let name = if live.len() == 1 {
                        n.clone()
                    } else {
                        format!("{n}_{}", snake(&mem.name))
                    };
                    if live.len() == 1 {
                        let _ = writeln!(
                            o,
                            "    /// The `{}` (its constant members are associated constants).",
                            mem.name
                        );
                    }
                    getter(o, &name, mem.prim, &mem.presence, off);
                    off += mem.prim.size();
                }
            }
            Encoding::Enum { prim, .. } => {
                let e = pascal(&f.ty);
                let r = prim.rust();
                field_doc(o, f);
                let _ = writeln!(
                    o,
                    "    /// `None` when the byte is not a value of [`{e}`]: see `{n}_raw`."
                );
                let _ = writeln!(o, "    #[inline]");
                let _ = writeln!(o, "    pub fn {n}(&self) -> Option<{e}> {{");
                let _ = writeln!(o, "        {e}::from_{r}(self.{n}_raw())");
                o.push_str("    }\n");
                let _ = writeln!(o, "    /// The encoded value of `{}`.", f.name);
                let _ = writeln!(o, "    #[inline]");
                let _ = writeln!(o, "    pub fn {n}_raw(&self) -> {r} {{");
                let _ = writeln!(o, "        wire::{r}_at(self.buf, {at})");
                o.push_str("    }\n");
            }
        }
    }
    o.push_str("}\n\n");
}

fn getter(o: &mut String, name: &str, prim: Prim, presence: &Presence, at: usize) {
    let r = prim.rust();
    match presence {
        Presence::Optional(null) => {
            let _ = writeln!(o, "    /// `None` when null ({null}).");
            let _ = writeln!(o, "    #[inline]");
            let _ = writeln!(o, "    pub fn {name}(&self) -> Option<{r}> {{");
            let _ = writeln!(o, "        let v = wire::{r}_at(self.buf, {at});");
            let _ = writeln!(o, "        if v == {null} {{\n            None\n        }} else {{\n            Some(v)\n        }}");
        }
        _ => {
            let _ = writeln!(o, "    #[inline]");
            let _ = writeln!(o, "    pub fn {name}(&self) -> {r} {{");
            let _ = writeln!(o, "        wire::{r}_at(self.buf, {at})");
        }
    }
    o.push_str("    }\n");
}

fn setter(o: &mut String, name: &str, prim: Prim, presence: &Presence, at: usize) {
    let r = prim.rust();
    match presence {
        Presence::Optional(null) => {
            let _ = writeln!(o, "    /// `None` writes null ({null}).");
            let _ = writeln!(o, "    #[inline]");
            let _ = writeln!(
                o,
                "    pub fn set_{name}(&mut self, v: Option<{r}>) -> &mut Self {{"
            );
            let _ = writeln!(
                o,
                "        wire::put_{r}(self.buf, {at}, v.unwrap_or({null}));"
            );
        }
        _ => {
            let _ = writeln!(o, "    #[inline]");
            let _ = writeln!(
                o,
                "    pub fn set_{name}(&mut self, v: {r}) -> &mut Self {{"
            );
            let _ = writeln!(o, "        wire::put_{r}(self.buf, {at}, v);");
        }
    }
    o.push_str("        self\n    }\n");
}

fn render_encoder(o: &mut String, s: &Schema, m: &Msg) {
    let ty = format!("{}Encoder", pascal(&m.name));
    doc(
        o,
        "",
        &format!(
            "Writes {} (templateId {}); layout on [`{}Decoder`].",
            m.name,
            m.id,
            pascal(&m.name)
        ),
    );
    let _ = writeln!(o, "#[derive(Debug)]");
    let _ = writeln!(
        o,
        "pub struct {ty}<'a> {{\n    buf: &'a mut [u8; {}],\n}}\n",
        m.block_length
    );
    let _ = writeln!(o, "impl<'a> {ty}<'a> {{");
    consts(o, m);
    let _ = writeln!(
        o,
        "    /// SOFH + message header + block: the whole frame [`Self::frame`] writes."
    );
    let _ = writeln!(
        o,
        "    pub const FRAME_LENGTH: usize = wire::SOFH_LENGTH + HEADER_LENGTH + {};",
        m.block_length
    );
    o.push_str("\n    /// An encoder over the root block `buf` (at least [`Self::BLOCK_LENGTH`] bytes); writes nothing.\n");
    o.push_str("    pub fn wrap(buf: &'a mut [u8]) -> Result<Self, SbeError> {\n");
    o.push_str("        let len = buf.len();\n");
    let _ = writeln!(
        o,
        "        match buf.first_chunk_mut::<{}>() {{",
        m.block_length
    );
    o.push_str("            Some(buf) => Ok(Self { buf }),\n");
    o.push_str("            None => Err(SbeError::BufferTooSmall {\n                len,\n                need: Self::BLOCK_LENGTH as usize,\n            }),\n        }\n    }\n\n");
    o.push_str("    /// Starts a whole frame at the front of `out`: the Simple Open Framing Header, the message\n");
    o.push_str("    /// header and a zeroed block with every optional field null. The frame is\n");
    o.push_str("    /// [`Self::FRAME_LENGTH`] bytes; the encoder writes its block.\n");
    o.push_str("    pub fn frame(out: &'a mut [u8]) -> Result<Self, SbeError> {\n");
    o.push_str("        let len = out.len();\n");
    o.push_str("        let Some(frame) = out.get_mut(..Self::FRAME_LENGTH) else {\n");
    o.push_str("            return Err(SbeError::BufferTooSmall {\n                len,\n                need: Self::FRAME_LENGTH,\n            });\n        };\n");
    o.push_str(
        "        let (head, block) = frame.split_at_mut(wire::SOFH_LENGTH + HEADER_LENGTH);\n",
    );
    o.push_str("        wire::put_headers(\n            head,\n            Self::FRAME_LENGTH,\n            Self::BLOCK_LENGTH,\n            Self::TEMPLATE_ID,\n            SCHEMA_ID,\n            SCHEMA_VERSION,\n        );\n");
    o.push_str("        block.fill(0);\n");
    let _ = writeln!(
        o,
        "        let Some(block) = block.first_chunk_mut::<{}>() else {{",
        m.block_length
    );
    o.push_str("            return Err(SbeError::BufferTooSmall {\n                len,\n                need: Self::FRAME_LENGTH,\n            });\n        };\n");
    let mut nulls = Vec::new();
    for f in &m.fields {
        match &s.types[&f.ty].enc {
            Encoding::Scalar {
                presence: Presence::Optional(_),
                ..
            } => nulls.push(snake(&f.name)),
            Encoding::Composite { members } => {
                let live: Vec<&Member> = members
                    .iter()
                    .filter(|m| !matches!(m.presence, Presence::Constant(_)))
                    .collect();
                for mem in &live {
                    if matches!(mem.presence, Presence::Optional(_)) {
                        nulls.push(if live.len() == 1 {
                            snake(&f.name)
                        } else {
                            format!("{}_{}", snake(&f.name), snake(&mem.name))
                        });
                    }
                }
            }
            _ => {}
        }
    }
    if nulls.is_empty() {
        o.push_str("        Ok(Self { buf: block })\n    }\n");
    } else {
        o.push_str("        let mut e = Self { buf: block };\n");
        for n in nulls {
            let _ = writeln!(o, "        e.set_{n}(None);");
        }
        o.push_str("        Ok(e)\n    }\n");
    }
    for f in &m.fields {
        let t = &s.types[&f.ty];
        let n = snake(&f.name);
        let at = f.offset;
        o.push('\n');
        match &t.enc {
            Encoding::Scalar { prim, presence } => {
                field_doc(o, f);
                setter(o, &n, *prim, presence, at);
            }
            Encoding::Array {
                prim: Prim::Char,
                length,
            } => {
                field_doc(o, f);
                let _ = writeln!(
                    o,
                    "    /// NUL-padded; more than {length} bytes is refused and writes nothing."
                );
                let _ = writeln!(o, "    #[inline]");
                let _ = writeln!(
                    o,
                    "    pub fn set_{n}(&mut self, v: &[u8]) -> Result<&mut Self, SbeError> {{"
                );
                let _ = writeln!(o, "        wire::put_str(self.buf, {at}, {length}, v)?;");
                o.push_str("        Ok(self)\n    }\n");
            }
            Encoding::Array { length, .. } => {
                field_doc(o, f);
                let _ = writeln!(o, "    #[inline]");
                let _ = writeln!(
                    o,
                    "    pub fn set_{n}(&mut self, v: &[u8; {length}]) -> &mut Self {{"
                );
                let _ = writeln!(o, "        wire::put_bytes(self.buf, {at}, v);");
                o.push_str("        self\n    }\n");
            }
            Encoding::Composite { members } => {
                let live: Vec<&Member> = members
                    .iter()
                    .filter(|m| !matches!(m.presence, Presence::Constant(_)))
                    .collect();
                let mut off = at;
                for mem in members {
                    if matches!(mem.presence, Presence::Constant(_)) {
                        continue;
                    }
                    field_doc(o, f);
                    let name = if live.len() == 1 {
                        n.clone()
                    } else {
                        format!("{n}_{}", snake(&mem.name))
                    };
                    setter(o, &name, mem.prim, &mem.presence, off);
                    off += mem.prim.size();
                }
            }
            Encoding::Enum { prim, .. } => {
                let e = pascal(&f.ty);
                let r = prim.rust();
                field_doc(o, f);
                let _ = writeln!(o, "    #[inline]");
                let _ = writeln!(o, "    pub fn set_{n}(&mut self, v: {e}) -> &mut Self {{");
                let _ = writeln!(o, "        wire::put_{r}(self.buf, {at}, v.to_{r}());");
                o.push_str("        self\n    }\n");
            }
        }
    }
    o.push_str("}\n\n");
}

fn render_dispatch(o: &mut String, s: &Schema) {
    o.push_str("/// A decoded message of this schema: the view for its templateId.\n");
    o.push_str("#[derive(Clone, Copy, Debug)]\npub enum Message<'a> {\n");
    for m in &s.messages {
        let p = pascal(&m.name);
        let _ = writeln!(o, "    {p}({p}Decoder<'a>),");
    }
    o.push_str("}\n\n");
    o.push_str("impl<'a> Message<'a> {\n");
    o.push_str("    /// The view of `block` for `template_id`; an unknown template or a short block is an error.\n");
    o.push_str(
        "    pub fn wrap(template_id: u16, block: &'a [u8]) -> Result<Message<'a>, SbeError> {\n",
    );
    o.push_str("        Ok(match template_id {\n");
    for m in &s.messages {
        let p = pascal(&m.name);
        let _ = writeln!(
            o,
            "            {} => Message::{p}({p}Decoder::wrap(block)?),",
            m.id
        );
    }
    o.push_str("            found => return Err(SbeError::UnknownTemplate { found }),\n        })\n    }\n\n");
    o.push_str("    /// The templateId of this message.\n    pub fn template_id(&self) -> u16 {\n        match self {\n");
    for m in &s.messages {
        let p = pascal(&m.name);
        let _ = writeln!(o, "            Message::{p}(_) => {p}Decoder::TEMPLATE_ID,");
    }
    o.push_str("        }\n    }\n\n");
    o.push_str("    /// Reads every field through its getter and folds the values into one number, so that\n");
    o.push_str("    /// fuzzing and benchmarks exercise every accessor (the value itself means nothing).\n");
    o.push_str("    #[doc(hidden)]\n    pub fn read_all_fields(&self) -> u64 {\n        let mut h: u64 = 0;\n");
    o.push_str("        match self {\n");
    for m in &s.messages {
        let p = pascal(&m.name);
        let _ = writeln!(o, "            Message::{p}(d) => {{");
        for f in &m.fields {
            for (getter, kind) in getters(s, f) {
                let expr = match kind {
                    Kind::Int(r) => widen(r, &format!("d.{getter}()")),
                    Kind::OptInt("u64") => format!("d.{getter}().unwrap_or(1)"),
                    Kind::OptInt(r @ ("u8" | "u16" | "u32")) => {
                        format!("d.{getter}().map_or(1, {})", widen(r, "").trim_end_matches("()"))
                    }
                    Kind::OptInt(r) => format!("d.{getter}().map_or(1, |v| {})", widen(r, "v")),
                    Kind::Str => format!("d.{getter}().len() as u64"),
                    Kind::Bytes => format!("u64::from(d.{getter}()[0])"),
                    Kind::Enum(r) => format!("d.{getter}().map_or(u64::from(d.{getter}_raw()), |v| u64::from(v.to_{r}()))"),
                };
                let _ = writeln!(o, "                h = h.rotate_left(5) ^ {expr};");
            }
        }
        o.push_str("            }\n");
    }
    o.push_str("        }\n        h\n    }\n}\n\n");
    o.push_str("/// The blockLength this schema version gives `template_id`, `None` for an unknown template.\n");
    o.push_str(
        "pub const fn block_length(template_id: u16) -> Option<u16> {\n    match template_id {\n",
    );
    for m in &s.messages {
        let _ = writeln!(o, "        {} => Some({}),", m.id, m.block_length);
    }
    o.push_str("        _ => None,\n    }\n}\n\n");
    o.push_str("/// Every templateId of this schema, in schema order.\n");
    let ids: Vec<String> = s.messages.iter().map(|m| m.id.to_string()).collect();
    let _ = writeln!(
        o,
        "pub const TEMPLATE_IDS: [u16; {}] = [{}];",
        ids.len(),
        ids.join(", ")
    );
}

/// `expr` of Rust type `r` as a u64 (bits, for folding), without a lint-worthy cast.
fn widen(r: &str, expr: &str) -> String {
    match r {
        "u64" => expr.to_string(),
        "u8" | "u16" | "u32" => format!("u64::from({expr})"),
        _ => format!("{expr} as u64"),
    }
}

/// How a getter's value is compared and folded.
#[derive(Clone, Copy)]
enum Kind {
    Int(&'static str),
    OptInt(&'static str),
    Str,
    Bytes,
    Enum(&'static str),
}

/// The getters of field `f` (composites may have several) with their kind and, for setters,
/// the value generator expression used by the round-trip tests.
fn getters(s: &Schema, f: &Field) -> Vec<(String, Kind)> {
    let n = snake(&f.name);
    match &s.types[&f.ty].enc {
        Encoding::Scalar { presence, prim } => vec![(
            n,
            if matches!(presence, Presence::Optional(_)) {
                Kind::OptInt(prim.rust())
            } else {
                Kind::Int(prim.rust())
            },
        )],
        Encoding::Array {
            prim: Prim::Char, ..
        } => vec![(n, Kind::Str)],
        Encoding::Array { .. } => vec![(n, Kind::Bytes)],
        Encoding::Enum { prim, .. } => vec![(n, Kind::Enum(prim.rust()))],
        Encoding::Composite { members } => {
            let live: Vec<&Member> = members
                .iter()
                .filter(|m| !matches!(m.presence, Presence::Constant(_)))
                .collect();
            live.iter()
                .map(|m| {
                    let name = if live.len() == 1 {
                        n.clone()
                    } else {
                        format!("{n}_{}", snake(&m.name))
                    };
                    let kind = if matches!(m.presence, Presence::Optional(_)) {
                        Kind::OptInt(m.prim.rust())
                    } else {
                        Kind::Int(m.prim.rust())
                    };
                    (name, kind)
                })
                .collect()
        }
    }
}

/// A random value for a field, as an expression over the test's `g: Gen`.
fn random_value(s: &Schema, f: &Field, member: usize) -> String {
    match &s.types[&f.ty].enc {
        Encoding::Scalar { prim, presence } => match presence {
            Presence::Optional(null) => {
                format!("{{ let x = g.{}(); g.maybe(x, {null}) }}", prim.rust())
            }
            _ => format!("g.{}()", prim.rust()),
        },
        Encoding::Array {
            prim: Prim::Char,
            length,
        } => format!("g.text({length})"),
        Encoding::Array { length, .. } => format!("g.bytes::<{length}>()"),
        Encoding::Enum { .. } => format!("g.pick(&{}::ALL)", pascal(&f.ty)),
        Encoding::Composite { members } => {
            let live: Vec<&Member> = members
                .iter()
                .filter(|m| !matches!(m.presence, Presence::Constant(_)))
                .collect();
            let m = live[member];
            match &m.presence {
                Presence::Optional(null) => {
                    format!("{{ let x = g.{}(); g.maybe(x, {null}) }}", m.prim.rust())
                }
                _ => format!("g.{}()", m.prim.rust()),
            }
        }
    }
}

/// Property tests: every field of every message set to a random value through the encoder
/// reads back equal through the framer, the header and the decoder.
fn render_tests(o: &mut String, s: &Schema) {
    o.push_str("\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::sbe::testing::Gen;\n    use crate::sbe::{frame, Frame, Header};\n\n");
    o.push_str("    proptest::proptest! {\n");
    for m in &s.messages {
        let p = pascal(&m.name);
        let _ = writeln!(o, "        #[test]");
        let _ = writeln!(
            o,
            "        fn {}_round_trips(seed in proptest::prelude::any::<u64>()) {{",
            snake(&m.name)
        );
        o.push_str("            let mut g = Gen::new(seed);\n");
        let _ = writeln!(
            o,
            "            let mut buf = [0u8; {p}Encoder::FRAME_LENGTH];"
        );
        let _ = writeln!(
            o,
            "            let mut e = {p}Encoder::frame(&mut buf).unwrap();"
        );
        let mut checks = Vec::new();
        let mut k = 0;
        for f in &m.fields {
            for (i, (getter, kind)) in getters(s, f).into_iter().enumerate() {
                let var = format!("v{k}");
                k += 1;
                let _ = writeln!(o, "            let {var} = {};", random_value(s, f, i));
                match kind {
                    Kind::Str => {
                        let _ = writeln!(o, "            e.set_{getter}(&{var}).unwrap();");
                        checks.push(format!("            assert_eq!(d.{getter}(), &{var}[..]);"));
                    }
                    Kind::Bytes => {
                        let _ = writeln!(o, "            e.set_{getter}(&{var});");
                        checks.push(format!("            assert_eq!(d.{getter}(), {var});"));
                    }
                    Kind::Enum(_) => {
                        let _ = writeln!(o, "            e.set_{getter}({var});");
                        checks.push(format!(
                            "            assert_eq!(d.{getter}(), Some({var}));"
                        ));
                    }
                    Kind::Int(_) | Kind::OptInt(_) => {
                        let _ = writeln!(o, "            e.set_{getter}({var});");
                        checks.push(format!("            assert_eq!(d.{getter}(), {var});"));
                    }
                }
            }
        }
        let _ = writeln!(o, "            let Frame::Complete(len) = frame(&buf, usize::MAX) else {{ panic!(\"not a frame\") }};");
        let _ = writeln!(o, "            assert_eq!(len, {p}Encoder::FRAME_LENGTH);");
        o.push_str("            let h = Header::read(&buf[6..]).unwrap();\n");
        let _ = writeln!(o, "            assert_eq!((h.schema_id, h.version, h.template_id, h.block_length), (SCHEMA_ID, SCHEMA_VERSION, {}, {}));", m.id, m.block_length);
        let _ = writeln!(o, "            let Ok(Message::{p}(d)) = Message::wrap(h.template_id, &buf[14..]) else {{ panic!(\"not a {p}\") }};");
        for c in checks {
            o.push_str(&c);
            o.push('\n');
        }
        o.push_str("        }\n");
    }
    o.push_str("    }\n}\n");
}

/// The layout document: each message's fields with offsets and sizes, each type, each enum.
fn render_layout(s: &Schema, source: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<!-- @generated by tools/sbegen from {source} — do not edit -->"
    );
    let _ = writeln!(
        o,
        "# SBE message layouts (schema {} version {})\n",
        s.id, s.version
    );
    o.push_str("Offsets are from the start of the root block, which follows the 6-byte Simple Open Framing\n");
    o.push_str("Header and the 8-byte message header (README.md). All integers little-endian.\n\n");
    o.push_str("| templateId | message | FIX MsgType | blockLength | frame bytes |\n|---:|---|:---:|---:|---:|\n");
    for m in &s.messages {
        let _ = writeln!(
            o,
            "| {} | [{}](#{}) | {} | {} | {} |",
            m.id,
            m.name,
            m.name.to_ascii_lowercase(),
            if m.semantic_type.is_empty() {
                "—"
            } else {
                &m.semantic_type
            },
            m.block_length,
            6 + s.header_length + m.block_length
        );
    }
    for m in &s.messages {
        let _ = writeln!(o, "\n## {}\n", m.name);
        let _ = writeln!(
            o,
            "templateId {}, blockLength {}. {}\n",
            m.id, m.block_length, m.description
        );
        o.push_str("| offset | size | field | id | type | encoding | meaning |\n|---:|---:|---|---:|---|---|---|\n");
        for f in &m.fields {
            let t = &s.types[&f.ty];
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} |",
                f.offset,
                t.enc.size(),
                f.name,
                f.id,
                f.ty,
                t.enc.describe(),
                f.description
            );
        }
    }
    o.push_str("\n## Enums\n");
    for name in &s.order {
        let t = &s.types[name];
        if let Encoding::Enum { prim, values } = &t.enc {
            let _ = writeln!(o, "\n### {} ({})\n", t.name, prim.xml());
            if !t.description.is_empty() {
                let _ = writeln!(o, "{}\n", t.description);
            }
            o.push_str("| value | name |\n|---|---|\n");
            for (n, v) in values {
                let shown = v.trim_start_matches("b'").trim_end_matches('\'');
                let _ = writeln!(o, "| `{shown}` | {n} |");
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_codecs_match_the_schemas() {
        let root = workspace_root();
        for (schema, rs, md) in SPECS {
            let (code, layout) = generate(&root, schema).unwrap();
            let current = std::fs::read_to_string(root.join(rs)).unwrap();
            assert!(
                current == code,
                "{rs} drifted from {schema}: run `cargo run -p portcullis-tools --bin sbegen`"
            );
            if !md.is_empty() {
                let current = std::fs::read_to_string(root.join(md)).unwrap();
                assert!(
                    current == layout,
                    "{md} drifted from {schema}: run `cargo run -p portcullis-tools --bin sbegen`"
                );
            }
        }
    }

    #[test]
    fn snake_case_names() {
        for (from, to) in [
            ("clOrdID", "cl_ord_id"),
            ("previousUUID", "previous_uuid"),
            ("TransactTime", "transact_time"),
            ("uuid", "uuid"),
            ("securityIDSource", "security_id_source"),
            ("StopPx", "stop_px"),
        ] {
            assert_eq!(snake(from), to);
        }
    }

    fn schema(types: &str, messages: &str) -> String {
        format!(
            "<sbe:messageSchema xmlns:sbe=\"http://fixprotocol.io/2016/sbe\" package=\"t\" id=\"5\" \
             version=\"1\"><types><composite name=\"messageHeader\">\
             <type name=\"blockLength\" primitiveType=\"uint16\"/>\
             <type name=\"templateId\" primitiveType=\"uint16\"/>\
             <type name=\"schemaId\" primitiveType=\"uint16\"/>\
             <type name=\"version\" primitiveType=\"uint16\"/></composite>{types}</types>\
             {messages}</sbe:messageSchema>"
        )
    }

    #[test]
    fn parses_a_small_schema() {
        let s = parse(&schema(
            "<type name=\"Id\" primitiveType=\"char\" length=\"4\"/>\
             <enum name=\"E\" encodingType=\"uint8\"><validValue name=\"A\">1</validValue></enum>",
            "<sbe:message name=\"M\" id=\"7\" blockLength=\"8\">\
             <field name=\"id\" id=\"1\" type=\"Id\" offset=\"0\"/>\
             <field name=\"e\" id=\"2\" type=\"E\" offset=\"4\"/></sbe:message>",
        ))
        .unwrap();
        assert_eq!((s.id, s.version, s.messages.len()), (5, 1, 1));
        let code = render(&s, "mini");
        assert!(code.starts_with("// @generated by tools/sbegen from mini — do not edit\n"));
        assert!(code.contains("pub fn id(&self) -> &'a [u8]"));
        assert!(code.contains("7 => Message::M(MDecoder::wrap(block)?),"));
    }

    #[test]
    fn rejects_schemas_it_cannot_compile() {
        let ty = "<type name=\"U\" primitiveType=\"uint32\"/>";
        let bad = [
            // overlapping fields
            schema(ty, "<sbe:message name=\"M\" id=\"1\" blockLength=\"8\"><field name=\"a\" id=\"1\" type=\"U\" offset=\"0\"/><field name=\"b\" id=\"2\" type=\"U\" offset=\"2\"/></sbe:message>"),
            // beyond blockLength
            schema(ty, "<sbe:message name=\"M\" id=\"1\" blockLength=\"2\"><field name=\"a\" id=\"1\" type=\"U\" offset=\"0\"/></sbe:message>"),
            // unknown type
            schema(ty, "<sbe:message name=\"M\" id=\"1\" blockLength=\"8\"><field name=\"a\" id=\"1\" type=\"V\" offset=\"0\"/></sbe:message>"),
            // repeated template id
            schema(ty, "<sbe:message name=\"M\" id=\"1\" blockLength=\"8\"/><sbe:message name=\"N\" id=\"1\" blockLength=\"8\"/>"),
            // a group
            schema(ty, "<sbe:message name=\"M\" id=\"1\" blockLength=\"8\"><group name=\"g\" id=\"3\"/></sbe:message>"),
            // an enum value using null / too long / duplicated
            schema("<enum name=\"E\" encodingType=\"uint8\"><validValue name=\"A\">255</validValue></enum>", "<sbe:message name=\"M\" id=\"1\" blockLength=\"8\"/>"),
            schema("<enum name=\"E\" encodingType=\"char\"><validValue name=\"A\">AB</validValue></enum>", "<sbe:message name=\"M\" id=\"1\" blockLength=\"8\"/>"),
            schema("<enum name=\"E\" encodingType=\"char\"><validValue name=\"A\">A</validValue><validValue name=\"B\">A</validValue></enum>", "<sbe:message name=\"M\" id=\"1\" blockLength=\"8\"/>"),
            // a variable-length array
            schema("<type name=\"D\" primitiveType=\"uint8\" length=\"0\"/>", "<sbe:message name=\"M\" id=\"1\" blockLength=\"8\"/>"),
            // no messages
            schema(ty, ""),
            // missing offset
            schema(ty, "<sbe:message name=\"M\" id=\"1\" blockLength=\"8\"><field name=\"a\" id=\"1\" type=\"U\"/></sbe:message>"),
        ];
        for text in &bad {
            assert!(parse(text).is_err(), "accepted: {text}");
        }
        // A header that is not four uint16.
        let no_header = "<sbe:messageSchema xmlns:sbe=\"x\" package=\"t\" id=\"5\"><types/>\
            <sbe:message name=\"M\" id=\"1\" blockLength=\"8\"/></sbe:messageSchema>";
        assert!(parse(no_header).is_err());
    }
}
