//! COLD — `portcullis audit verify|trail`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::timeline::{self, Query};
use super::verify::{self, Options};
use crate::config::Config;

/// `portcullis audit ...`.
#[derive(Subcommand)]
pub enum AuditCmd {
    /// Verify trail files (or folders of them): every record's hash and link, the sequence,
    /// checkpoint signatures, file chaining, a closed end. Exit 0 only when all verifies.
    Verify {
        /// Trail files (`trail-*.jsonl`) or folders holding them (a folder is the whole trail).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        key: KeyArgs,
        /// Accept a last file that is still being written (a running gateway's).
        #[arg(long)]
        live: bool,
    },
    /// Rebuild from the verified trail everything about an order, key, session or address.
    Trail(Box<TrailArgs>),
}

/// Where the public key and the trail are.
#[derive(Args, Clone, Default)]
pub struct KeyArgs {
    /// The Ed25519 public key (64 hex digits, or a file holding them). Default:
    /// audit.public_key of --config, else <data dir>/secrets/audit-signing.pub.
    #[arg(long)]
    public_key: Option<String>,
    /// The gateway's config: its audit.public_key, data folder and audit.dir.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The gateway's data folder (default: from --config, else the folder above the trail).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct TrailArgs {
    /// A ClOrdID (any of the order's) or the gateway's OrderID: the order's whole lifecycle.
    #[arg(long, group = "what")]
    order: Option<String>,
    /// An API key id.
    #[arg(long, group = "what")]
    key: Option<String>,
    /// A session (`FIX.4.4:CLIENT1->GW`) or the client's CompID.
    #[arg(long, group = "what")]
    session: Option<String>,
    /// A client IP address.
    #[arg(long, group = "what")]
    address: Option<String>,
    /// From this UTC time (RFC 3339, or a prefix such as 2026-12-07T04), inclusive.
    #[arg(long)]
    from: Option<String>,
    /// Up to this UTC time, exclusive.
    #[arg(long)]
    to: Option<String>,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Build the timeline even from files that do not verify (marked as such).
    #[arg(long)]
    unverified: bool,
    /// Accept a last file still being written.
    #[arg(long)]
    live: bool,
    /// The trail folder (default: audit.dir of --config or the data folder's `audit`).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[command(flatten)]
    key_args: KeyArgs,
}

fn load(cfg: Option<&Path>) -> Result<Option<Config>, String> {
    cfg.map(|p| Config::load(p).map_err(|e| e.to_string()))
        .transpose()
}

/// The data folder: --data-dir, the config's, or the folder above the first trail path.
fn data_dir(k: &KeyArgs, cfg: Option<&Config>, first: Option<&Path>) -> Option<PathBuf> {
    k.data_dir
        .clone()
        .or_else(|| cfg.map(|c| c.gateway.data_dir.clone()))
        .or_else(|| {
            let p = first?;
            let dir = if p.is_dir() { p } else { p.parent()? };
            dir.parent().map(Path::to_path_buf)
        })
}

fn run_verify(
    paths: &[PathBuf],
    k: &KeyArgs,
    live: bool,
    keep: bool,
) -> Result<verify::Report, String> {
    let cfg = load(k.config.as_deref())?;
    let (files, whole) = verify::collect(paths)?;
    if files.is_empty() {
        return Err("no trail files (trail-*.jsonl) found".into());
    }
    let mut notes = Vec::new();
    let dd = data_dir(k, cfg.as_ref(), paths.first().map(PathBuf::as_path));
    let key = verify::find_key(
        k.public_key.as_deref(),
        cfg.as_ref(),
        dd.as_deref(),
        &mut notes,
    )?;
    let mut rep = verify::verify(
        &files,
        &Options {
            public_key: key,
            whole_trail: whole,
            live,
            keep,
        },
    );
    notes.append(&mut rep.notes);
    rep.notes = notes;
    Ok(rep)
}

fn print_report(rep: &verify::Report, to_err: bool) {
    let out = |s: String| {
        if to_err {
            crate::say_err(format_args!("{s}"));
        } else {
            crate::say(format_args!("{s}"));
        }
    };
    for n in &rep.notes {
        out(format!("note: {n}"));
    }
    for p in &rep.problems {
        out(format!("FAIL {p}"));
    }
    out(format!(
        "{}: {} file(s), {} record(s), {} checkpoint(s), {} problem(s)",
        if rep.ok() { "verified" } else { "NOT VERIFIED" },
        rep.files,
        rep.records,
        rep.checkpoints,
        rep.problems.len()
    ));
}

impl AuditCmd {
    /// Exit code: 0 verified / built, 1 problems found or refused, 2 bad arguments.
    pub fn run(self) -> u8 {
        match self {
            AuditCmd::Verify { paths, key, live } => match run_verify(&paths, &key, live, false) {
                Ok(rep) => {
                    print_report(&rep, false);
                    u8::from(!rep.ok())
                }
                Err(e) => {
                    crate::say_err(format_args!("portcullis audit verify: {e}"));
                    2
                }
            },
            AuditCmd::Trail(a) => a.run(),
        }
    }
}

impl TrailArgs {
    fn run(self) -> u8 {
        let fail = |e: String| {
            crate::say_err(format_args!("portcullis audit trail: {e}"));
            2
        };
        if self.order.is_none()
            && self.key.is_none()
            && self.session.is_none()
            && self.address.is_none()
        {
            return fail("say what to look for: --order, --key, --session or --address".into());
        }
        for t in [&self.from, &self.to].into_iter().flatten() {
            if let Err(e) = timeline::check_time(t) {
                return fail(format!("--from/--to: {e}"));
            }
        }
        let cfg = match load(self.key_args.config.as_deref()) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        let dir = self.dir.clone().unwrap_or_else(|| match &cfg {
            Some(c) => c.audit.dir_in(&c.gateway.data_dir),
            None => self
                .key_args
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("portcullis-data"))
                .join("audit"),
        });
        let rep = match run_verify(std::slice::from_ref(&dir), &self.key_args, self.live, true) {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        if !rep.ok() {
            print_report(&rep, true);
            if !self.unverified {
                crate::say_err(format_args!(
                    "portcullis audit trail: refused: the trail in {} does not verify (see \
                     above); --unverified builds the timeline anyway",
                    dir.display()
                ));
                return 1;
            }
        }
        let q = Query {
            order: self.order,
            key: self.key,
            session: self.session,
            address: self.address,
            from: self.from,
            to: self.to,
        };
        let sel = timeline::select(&rep.all, &q);
        if self.json {
            let v = serde_json::json!({
                "verified": rep.ok(),
                "problems": rep.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "records": timeline::json(&sel),
            });
            crate::say(format_args!(
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            ));
        } else {
            if !rep.ok() {
                crate::say(format_args!(
                    "UNVERIFIED TRAIL ({} problem(s)): records may have been altered",
                    rep.problems.len()
                ));
            }
            crate::say(format_args!(
                "{}{} record(s)",
                timeline::text(&sel),
                sel.len()
            ));
        }
        0
    }
}
