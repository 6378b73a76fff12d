//! Types stored as files and announced by path (4 dnscap, 5 pcapng, 7 YAF):
//! bytes are written as they come, and files are cut only between records.
//! Where records end is [`d4_packet::records`]'s business (a [`Cutter`] holds
//! back the record not yet whole, at most `MAX_HELD_RECORD` bytes).

use chrono::{DateTime, Utc};
use d4_packet::records::{Cutter, Format};

use super::{Output, Rotator, WorkerError};
use crate::store::queues::QueueType;

/// Stores a stream into rotated files, cut between records.
pub(crate) struct FileWorker {
    files: Rotator,
    /// Where records end; the bytes of the record not yet whole.
    cutter: Cutter,
}

impl FileWorker {
    /// The file rotator.
    pub(crate) fn files_mut(&mut self) -> &mut Rotator {
        &mut self.files
    }

    /// A worker writing through `files` a stream of `format` (pcapng,
    /// IPFIX, or type 4's pcap-or-text).
    pub(crate) fn new(files: Rotator, format: Format) -> FileWorker {
        FileWorker {
            files,
            cutter: Cutter::new(format),
        }
    }

    /// The queue type (file paths are announced there).
    pub(crate) fn queue_type(&self) -> QueueType {
        match self.cutter.tracker().format() {
            Format::Pcapng => QueueType::Type(5),
            Format::Ipfix => QueueType::Type(7),
            _ => QueueType::Type(4),
        }
    }

    /// Handles one payload.
    pub(crate) fn data(
        &mut self,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Output, WorkerError> {
        // The preamble as of before these bytes opens a file rotated while
        // writing them (the rotator's prefix is set after each write).
        let whole = self.cutter.push(payload)?;
        if !whole.is_empty() {
            // A new file must not repeat a preamble it starts with.
            if self.files.current_path().is_none() {
                self.files.set_prefix(Vec::new());
            }
            self.files
                .write(whole, now)
                .map_err(WorkerError::store("data"))?;
            let preamble = self.cutter.tracker().preamble();
            if self.files.prefix() != preamble {
                self.files.set_prefix(preamble.to_vec());
            }
        }
        Ok(Output::default())
    }

    /// Closes the file. An unfinished last record is stored only after a
    /// clean end of text streams (binary records cut short are not records).
    pub(crate) fn finish(&mut self, now: DateTime<Utc>, clean: bool) -> Output {
        let rest = self.cutter.take_held();
        if !rest.is_empty() {
            if clean && self.cutter.tracker().followed() == Format::Lines {
                if let Err(e) = self.files.write(&rest, now) {
                    tracing::error!("{e}");
                }
            } else {
                tracing::warn!(
                    "session ended inside a record: {} bytes not stored",
                    rest.len()
                );
            }
        }
        self.files.rotate();
        Output::default()
    }
}

#[cfg(test)]
mod tests {
    use d4_packet::records::pcapng;

    use super::*;

    fn block(ty: u32, body: usize) -> Vec<u8> {
        if ty == 0 {
            pcapng::build_section_header(body, false)
        } else {
            pcapng::build_block(ty, &vec![7; body], false)
        }
    }

    /// What a cutter hands out for `b` in one push.
    fn whole(f: &mut Cutter, b: &[u8]) -> Result<usize, WorkerError> {
        Ok(f.push(b).map(|w| w.len())?)
    }

    #[test]
    fn pcapng_cuts_between_blocks_and_keeps_the_preamble() {
        let shb = block(0, 16);
        let idb = block(1, 8);
        let epb = block(6, 40);
        let stream = [shb.clone(), idb.clone(), epb.clone(), epb.clone()].concat();
        let mut f = Cutter::new(Format::Pcapng);
        // Cut inside the last block: only the whole ones count.
        assert_eq!(
            whole(&mut f, &stream[..stream.len() - 3]).unwrap(),
            stream.len() - epb.len()
        );
        assert_eq!(f.tracker().preamble(), &[shb, idb].concat()[..]);
        assert!(
            whole(&mut Cutter::new(Format::Pcapng), b"GET / HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .to_string()
                .contains("not a pcapng stream")
        );
    }

    #[test]
    fn ipfix_and_lines() {
        let msg = |len: u16| {
            let mut m = vec![0, 10];
            m.extend_from_slice(&len.to_be_bytes());
            m.resize(len as usize, 0);
            m
        };
        let s = [msg(16), msg(40), msg(30)].concat();
        assert_eq!(
            whole(&mut Cutter::new(Format::Ipfix), &s[..s.len() - 1]).unwrap(),
            56
        );
        assert!(whole(&mut Cutter::new(Format::Ipfix), &[0, 10, 0, 3]).is_err());
        assert_eq!(
            whole(&mut Cutter::new(Format::Lines), b"a\nb\nc").unwrap(),
            4
        );
        let mut lines = Cutter::new(Format::Lines);
        assert_eq!(whole(&mut lines, b"a\nb").unwrap(), 2);
        assert_eq!(whole(&mut lines, b"c").unwrap(), 0, "no new line end");
        let mut auto = Cutter::new(Format::PcapOrText);
        assert_eq!(whole(&mut auto, b"text\nmore").unwrap(), 5);
        assert_eq!(auto.tracker().followed(), Format::Lines);
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        pcap.resize(24, 0);
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&4u32.to_le_bytes());
        pcap.extend_from_slice(&4u32.to_le_bytes());
        pcap.extend_from_slice(b"abcd");
        let mut auto = Cutter::new(Format::PcapOrText);
        assert_eq!(whole(&mut auto, &pcap[..pcap.len() - 1]).unwrap(), 24);
        assert_eq!(auto.tracker().followed(), Format::Pcap);
    }
}
