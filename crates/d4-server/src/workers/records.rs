//! `ja3-jl` (type 254): TLS sessions from the D4 TLS fingerprinting sensor
//! (or `d4 tls fingerprint`), one JSON line each. As the reference server
//! does, each record is saved as a file of its own,
//! `<day folder>/ja3-jl/jsons/<Timestamp>.json`, each certificate of its
//! `Certificates` (`Raw`, base64 DER) once, `<day folder>/ja3-jl/certs/<SHA-1
//! of the DER>.crt`, and the queue item is the path of the record's file.
//!
//! Unlike the reference: a `Timestamp` that is not RFC 3339 (or would make a
//! path) names the file by the time received instead; two records of the
//! same second do not overwrite each other (`<Timestamp>.1.json`...), and the
//! same record sent again (a sensor resending after a reconnection) reuses
//! its file; files are written under a temporary name and renamed, so a
//! consumer never opens half of one; a certificate that is not base64 is
//! reported and the record kept; lines of up to 1 MiB (the reference cuts
//! at 100 KB, breaking long chains).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use sha1::{Digest, Sha1};

use super::lines::{LineRules, LineWorker};
use super::{Output, Rotator, WorkerError};
use crate::store::queues::QueueType;

/// Files of the same name tried before giving up on a record.
const MAX_SAME_NAME: u32 = 10_000;

/// The keys the server reads from a record.
#[derive(Deserialize)]
struct Record {
    #[serde(rename = "Timestamp", default)]
    timestamp: Option<serde_json::Value>,
    #[serde(rename = "Certificates", default)]
    certificates: Option<Vec<Cert>>,
}

#[derive(Deserialize)]
struct Cert {
    #[serde(rename = "Raw", default)]
    raw: Option<String>,
}

/// Saves `ja3-jl` records one file each; queues their paths.
pub(crate) struct RecordWorker {
    lines: LineWorker,
}

impl RecordWorker {
    /// A worker whose folders are those of `files`.
    pub(crate) fn new(files: Rotator, queue: QueueType) -> RecordWorker {
        RecordWorker {
            lines: LineWorker::new(files, queue, LineRules::RECORDS),
        }
    }

    /// The file rotator (its day folder holds `jsons/` and `certs/`).
    pub(crate) fn files_mut(&mut self) -> &mut Rotator {
        self.lines.files_mut()
    }

    /// The queue type of the items.
    pub(crate) fn queue_type(&self) -> &QueueType {
        self.lines.queue_type()
    }

    /// Handles one payload.
    pub(crate) fn data(
        &mut self,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Output, WorkerError> {
        let out = self.lines.data(payload, now)?;
        self.save(out, now)
    }

    /// Ends the session (a last record without its newline is saved if the
    /// session ended cleanly).
    pub(crate) fn finish(&mut self, now: DateTime<Utc>, clean: bool) -> Output {
        let out = self.lines.finish(now, clean);
        match self.save(out, now) {
            Ok(out) => out,
            Err(e) => {
                tracing::error!("{e}");
                Output::default()
            }
        }
    }

    /// Saves each record line of `out` and replaces it by its file's path.
    fn save(&mut self, mut out: Output, now: DateTime<Utc>) -> Result<Output, WorkerError> {
        if out.items.is_empty() {
            return Ok(out);
        }
        let folder = self.lines.files_mut().folder(now);
        let lines = std::mem::take(&mut out.items);
        for line in lines {
            let path = save_record(&folder, &line, now, &mut out.skipped)
                .map_err(WorkerError::store("ja3-jl records"))?;
            out.items
                .push(Bytes::from(path.to_string_lossy().into_owned()));
        }
        Ok(out)
    }
}

/// Saves one record (a valid JSON line) and its certificates under
/// `folder`; returns the record file's path. Problems that lose nothing
/// (a certificate that is not base64) go to `skipped`.
fn save_record(
    folder: &Path,
    line: &[u8],
    now: DateTime<Utc>,
    skipped: &mut Vec<String>,
) -> io::Result<PathBuf> {
    let rec: Option<Record> = serde_json::from_slice(line).ok();
    let certs = rec
        .as_ref()
        .and_then(|r| r.certificates.as_deref())
        .unwrap_or_default();
    if !certs.is_empty() {
        let dir = folder.join("certs");
        std::fs::create_dir_all(&dir)?;
        for (i, c) in certs.iter().enumerate() {
            let Some(raw) = c.raw.as_deref() else {
                skipped.push(format!("certificate {i} has no Raw"));
                continue;
            };
            let der = match base64::engine::general_purpose::STANDARD.decode(raw) {
                Ok(der) => der,
                Err(e) => {
                    skipped.push(format!("certificate {i} is not base64: {e}"));
                    continue;
                }
            };
            let name = format!("{}.crt", hex(&Sha1::digest(&der)));
            let path = dir.join(name);
            if !path.exists() {
                write_new(&path, &der)?;
            }
        }
    }
    let dir = folder.join("jsons");
    std::fs::create_dir_all(&dir)?;
    let stem = rec
        .as_ref()
        .and_then(|r| file_stem(r.timestamp.as_ref()))
        .unwrap_or_else(|| now.to_rfc3339_opts(SecondsFormat::Micros, true));
    for n in 0..MAX_SAME_NAME {
        let name = match n {
            0 => format!("{stem}.json"),
            n => format!("{stem}.{n}.json"),
        };
        let path = dir.join(name);
        match std::fs::read(&path) {
            // The same record sent again: its file stands.
            Ok(had) if had == line => return Ok(path),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                write_new(&path, line)?;
                return Ok(path);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{MAX_SAME_NAME} records named {stem}.json already"
    )))
}

/// The record's `Timestamp` when it is RFC 3339 and safe as a file name.
fn file_stem(ts: Option<&serde_json::Value>) -> Option<String> {
    let ts = ts?.as_str()?;
    let safe = !ts.is_empty()
        && ts.len() <= 64
        && ts
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'+' | b'-'));
    (safe && DateTime::parse_from_rfc3339(ts).is_ok()).then(|| ts.to_string())
}

/// Writes `bytes` to `path` through a temporary name in the same folder,
/// so that `path` is either absent or whole.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    let r = f
        .write_all(bytes)
        .and_then(|()| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn line(ts: &str, certs: &[&[u8]]) -> Vec<u8> {
        let certs: Vec<_> = certs
            .iter()
            .map(|c| {
                serde_json::json!({
                    "CertHash": "ignored",
                    "Raw": base64::engine::general_purpose::STANDARD.encode(c),
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "ServerIP": "192.0.2.1", "ServerPort": "443",
            "ClientIP": "192.0.2.9", "ClientPort": "50000",
            "Timestamp": ts, "JA3": "771,4865,0,29,0", "Certificates": certs,
        }))
        .unwrap()
    }

    #[test]
    fn records_and_certificates_are_saved_once_each() {
        let d = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let mut skipped = Vec::new();
        let ts = "2021-10-01T10:00:00.123456Z";
        let a = line(ts, &[b"leaf", b"ca"]);
        let b = line(ts, &[b"other leaf", b"ca"]);
        let pa = save_record(d.path(), &a, now, &mut skipped).unwrap();
        let pb = save_record(d.path(), &b, now, &mut skipped).unwrap();
        let again = save_record(d.path(), &a, now, &mut skipped).unwrap();
        assert_eq!(pa, d.path().join("jsons").join(format!("{ts}.json")));
        assert_eq!(pb, d.path().join("jsons").join(format!("{ts}.1.json")));
        assert_eq!(again, pa, "a record sent again reuses its file");
        assert_eq!(std::fs::read(&pa).unwrap(), a);
        assert_eq!(std::fs::read(&pb).unwrap(), b);
        let mut certs: Vec<_> = std::fs::read_dir(d.path().join("certs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        certs.sort();
        // sha1("ca"), sha1("leaf"), sha1("other leaf")
        let mut want: Vec<String> = [&b"ca"[..], b"leaf", b"other leaf"]
            .iter()
            .map(|c| format!("{}.crt", hex(&Sha1::digest(c))))
            .collect();
        want.sort();
        assert_eq!(certs, want);
        let ca = format!("{}.crt", hex(&Sha1::digest(b"ca")));
        assert_eq!(
            std::fs::read(d.path().join("certs").join(ca)).unwrap(),
            b"ca"
        );
        assert!(skipped.is_empty(), "{skipped:?}");
    }

    #[test]
    fn a_timestamp_that_would_make_a_path_is_not_used() {
        let d = tempfile::tempdir().unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-05T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut skipped = Vec::new();
        for ts in [
            "../../../etc/passwd",
            "",
            "yesterday",
            "2021-10-01T10:00:00Z/x",
        ] {
            let p = save_record(d.path(), &line(ts, &[]), now, &mut skipped).unwrap();
            assert_eq!(p.parent().unwrap(), d.path().join("jsons"), "{ts}");
            assert!(
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("2026-12-05T12:00:00"),
                "{p:?}"
            );
        }
        let no_ts = br#"{"JA3":"x","Certificates":null}"#;
        let p = save_record(d.path(), no_ts, now, &mut skipped).unwrap();
        assert_eq!(std::fs::read(p).unwrap(), no_ts);
    }

    #[test]
    fn a_certificate_that_is_not_base64_is_reported_and_the_record_kept() {
        let d = tempfile::tempdir().unwrap();
        let mut skipped = Vec::new();
        let l = br#"{"Timestamp":"2021-10-01T10:00:00Z","Certificates":[{"Raw":"%%%"},{"CertHash":"x"}]}"#;
        let p = save_record(d.path(), l, Utc::now(), &mut skipped).unwrap();
        assert_eq!(std::fs::read(p).unwrap(), l);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].contains("not base64"), "{skipped:?}");
    }
}
