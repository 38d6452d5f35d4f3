//! Feeds arbitrary bytes through the deframer and both decoders: nothing may panic, and
//! every frame that decodes must re-encode to a payload that decodes to the same message.

#![no_main]

use allot_protocol::codec::{decode_client, decode_server, encode_payload};
use allot_protocol::{ClientFrame, Deframer, ServerFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split_seed, stream)) = data.split_first() else {
        return;
    };
    let split = usize::from(split_seed) * stream.len() / 255;
    let (first, second) = stream.split_at(split.min(stream.len()));

    let mut deframer = Deframer::new();
    let mut payloads = Vec::new();
    for piece in [first, second] {
        deframer.push(piece);
        loop {
            match deframer.next_frame() {
                Ok(Some(payload)) => payloads.push(payload.to_vec()),
                Ok(None) => break,
                Err(_) => {
                    check_payloads(&payloads);
                    return;
                }
            }
        }
    }
    let _ = deframer.finish();
    check_payloads(&payloads);
});

fn check_payloads(payloads: &[Vec<u8>]) {
    for payload in payloads {
        if let Ok(message) = decode_client(payload) {
            let again: ClientFrame = decode_client(&encode_payload(&message))
                .expect("a re-encoded client frame decodes");
            assert_eq!(again, message);
        }
        if let Ok(message) = decode_server(payload) {
            let again: ServerFrame = decode_server(&encode_payload(&message))
                .expect("a re-encoded server frame decodes");
            assert_eq!(again, message);
        }
    }
}
