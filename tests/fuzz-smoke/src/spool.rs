//! The spool's segment files: header, record framing and the recovery scan.

use dcim_spool::Class;
use dcim_spool::format::{
    Decoded, SEGMENT_HEADER_LEN, SegmentHeader, decode_record, decode_segment_header,
    encode_record, encode_segment_header, parse_segment_file_name, scan_segment,
};

/// Checks what a scan of `file` reports against the file itself.
fn check_scan(file: &[u8]) -> Option<dcim_spool::format::Scan> {
    let scan = scan_segment(file).ok()?;
    assert!(scan.valid_len as usize <= file.len());
    assert!(scan.valid_len as usize >= SEGMENT_HEADER_LEN);
    let mut end = SEGMENT_HEADER_LEN as u64;
    let mut last = None;
    for r in &scan.records {
        assert_eq!(r.offset, end, "records are contiguous");
        let at = r.offset as usize;
        match decode_record(&file[at..]) {
            Decoded::Record {
                seq, framed_len, ..
            } => {
                assert_eq!(seq, r.seq);
                assert_eq!(framed_len, r.framed_len as usize);
            }
            other => panic!("scan kept a record that does not decode: {other:?}"),
        }
        if let Some(l) = last {
            assert!(r.seq > l, "sequence numbers increase");
        }
        last = Some(r.seq);
        end += u64::from(r.framed_len);
    }
    assert_eq!(end, scan.valid_len, "valid length is header plus records");
    assert_eq!(scan.damage.is_none(), scan.valid_len as usize == file.len());
    Some(scan)
}

/// `data[0] % 3`: 0 = a whole segment file as found on disk; 1 = a file name; 2 = a valid
/// segment built from the rest (records separated by 0x00, increasing sequence numbers,
/// correct checksums), which must scan completely, then damaged at one position (flip or
/// truncate), which must keep exactly the records before the damage.
pub fn segment(data: &[u8]) {
    let [mode, rest @ ..] = data else {
        return;
    };
    match mode % 3 {
        0 => {
            let _ = decode_segment_header(rest);
            let _ = decode_record(rest);
            check_scan(rest);
        }
        1 => {
            if let Ok(name) = std::str::from_utf8(rest)
                && let Some((class, seq)) = parse_segment_file_name(name)
            {
                let again = dcim_spool::format::segment_file_name(class, seq);
                assert_eq!(parse_segment_file_name(&again), Some((class, seq)));
            }
        }
        _ => {
            let [class, first, at_hi, at_lo, how, body @ ..] = rest else {
                return;
            };
            let class = if class & 1 == 0 {
                Class::Event
            } else {
                Class::Telemetry
            };
            let first_seq = u64::from(*first) + 1;
            let mut file = encode_segment_header(&SegmentHeader { class, first_seq }).to_vec();
            let mut ends = Vec::new();
            let mut seq = first_seq;
            for (i, payload) in crate::chunks(body, 0, 64).enumerate() {
                encode_record(seq, i as u32 + 1, payload, &mut file);
                ends.push(file.len());
                seq += 1 + u64::from(payload.first().copied().unwrap_or(0) % 3);
            }
            let scan = check_scan(&file).expect("a valid segment header");
            assert_eq!(
                scan.records.len(),
                ends.len(),
                "a valid segment scans whole"
            );
            assert!(scan.damage.is_none());
            // Damage one byte at or after the header, or cut the file there.
            let pos = usize::from(u16::from_be_bytes([*at_hi, *at_lo]));
            if file.len() <= SEGMENT_HEADER_LEN {
                return;
            }
            let pos = SEGMENT_HEADER_LEN + pos % (file.len() - SEGMENT_HEADER_LEN);
            let mut damaged = file.clone();
            if how & 1 == 0 {
                damaged[pos] ^= how | 1;
            } else {
                damaged.truncate(pos);
            }
            let scan = check_scan(&damaged).expect("header untouched");
            let intact = ends.iter().filter(|e| **e <= pos).count();
            // Everything before the damage is kept and nothing after it (a damaged record
            // could only pass by a CRC-32 collision).
            assert_eq!(
                scan.records.len(),
                intact,
                "records kept after damage at {pos}"
            );
        }
    }
}
