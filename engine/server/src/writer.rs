//! The sending half of a stream: one task per stream writes the answers in the order they
//! complete, coalescing those that are ready together into one write, and releases each
//! request's in-flight permit and its answer's bytes (held against the connection's and
//! the server's budgets) once the answer has been handed to QUIC.
//!
//! Payloads are encoded with `codec::encode_payload` and measured when the answer is
//! ready, not when it is written: a reply listing every location or every cell of a SKU
//! is as large as the data, so an answer that would not fit in a frame is replaced by a
//! `FrameTooLarge` error there, and the writer only frames what fits.

use std::time::Duration;

use allot_protocol::limits::FRAME_BYTES_MAX;
use allot_protocol::{Error, ErrorCode, Response, ServerFrame, codec, frame};
use quinn::SendStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc;

use super::budget::{Admission, Buffers, Held};

/// Answers that may wait for the writer on one stream; a full queue holds back the tasks
/// answering requests, which hold their permits, which stops the reader (backpressure).
pub const ANSWERS_QUEUED_PER_STREAM_MAX: usize = 256;
/// Ready answers gathered into one write.
const COALESCE_BYTES_MAX: usize = 256 * 1024;
/// Longest refusal message sent; the rest is cut (a decoder's message could echo input).
const REFUSAL_MESSAGE_BYTES_MAX: usize = 512;

/// What the writer is handed.
pub enum Outgoing {
    /// One encoded frame payload, with the in-flight permits of the requests it answers
    /// and its bytes held against the budgets.
    Frame { payload: Vec<u8>, permit: Option<OwnedSemaphorePermit>, held: Held },
    /// The stream is refused: the refusal is written after every answer still in flight,
    /// then the stream is finished.
    Refuse(Error),
}

impl Outgoing {
    /// A frame answering no request (the `Welcome`), its bytes charged to `buffers`
    /// until it is written.
    pub fn frame(frame: &ServerFrame, buffers: &Buffers) -> Outgoing {
        let payload = codec::encode_payload(frame);
        let held = buffers.charge(payload.len());
        Outgoing::Frame { payload, permit: None, held }
    }

    /// The answer to admitted requests: the bytes reserved for it become its real size.
    pub fn answer(payload: Vec<u8>, admission: Admission) -> Outgoing {
        let (requests, held) = admission.answered(payload.len());
        Outgoing::Frame { payload, permit: Some(requests), held }
    }
}

/// Writes until every sender is gone, then the refusal if any, then finishes the stream
/// and waits up to `linger` for the peer to acknowledge it all.
pub async fn write_answers(
    mut send: SendStream,
    mut outbox: mpsc::Receiver<Outgoing>,
    linger: Duration,
) {
    let mut refusal = None;
    let mut buffer = Vec::new();
    let mut permits = Vec::new();
    let mut held = Vec::new();
    let mut broken = false;
    while let Some(first) = outbox.recv().await {
        let mut next = Some(first);
        while let Some(outgoing) = next.take() {
            match outgoing {
                Outgoing::Frame { payload, permit, held: bytes } => {
                    append_frame(&mut buffer, &payload);
                    permits.extend(permit);
                    held.push(bytes);
                }
                Outgoing::Refuse(error) => refusal = Some(error),
            }
            if buffer.len() < COALESCE_BYTES_MAX {
                next = outbox.try_recv().ok();
            }
        }
        // After a failed write the answers are still drained, so their permits return.
        if !broken && !buffer.is_empty() {
            broken = send.write_all(&buffer).await.is_err();
        }
        buffer.clear();
        permits.clear();
        held.clear();
    }
    if broken {
        return;
    }
    if let Some(error) = refusal {
        let payload = codec::encode_payload(&ServerFrame::Refused(shorten(error)));
        append_frame(&mut buffer, &payload);
        if send.write_all(&buffer).await.is_err() {
            return;
        }
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(linger, send.stopped()).await;
}

/// Frames a payload that `response_payload` or `batch_payload` (or a shortened
/// refusal) already brought within the limit.
fn append_frame(buffer: &mut Vec<u8>, payload: &[u8]) {
    frame::append_frame(payload, FRAME_BYTES_MAX, buffer)
        .expect("answers are brought within the frame limit before they are queued");
}

fn shorten(mut error: Error) -> Error {
    if error.message.len() > REFUSAL_MESSAGE_BYTES_MAX {
        let mut end = REFUSAL_MESSAGE_BYTES_MAX;
        while !error.message.is_char_boundary(end) {
            end -= 1;
        }
        error.message.truncate(end);
    }
    error
}

fn too_large(bytes: usize) -> Error {
    let message = format!(
        "the answer is {bytes} bytes, over the {FRAME_BYTES_MAX}-byte frame limit; ask for less"
    );
    Error::new(ErrorCode::FrameTooLarge, message)
}

/// The payload of a `Response` frame, with an oversized reply replaced by an error.
pub fn response_payload(response: Response) -> Vec<u8> {
    let mut frame = ServerFrame::Response(response);
    let payload = codec::encode_payload(&frame);
    if payload.len() <= FRAME_BYTES_MAX {
        return payload;
    }
    if let ServerFrame::Response(response) = &mut frame {
        response.result = Err(too_large(payload.len()));
    }
    codec::encode_payload(&frame)
}

/// The payload of a `Batch` frame. If the whole would not fit, the largest replies are
/// replaced by errors until it does; only query replies can be that large.
pub fn batch_payload(responses: Vec<Response>) -> Vec<u8> {
    let mut frame = ServerFrame::Batch(responses);
    let payload = codec::encode_payload(&frame);
    if payload.len() <= FRAME_BYTES_MAX {
        return payload;
    }
    if let ServerFrame::Batch(responses) = &mut frame {
        shrink_to_fit(responses, payload.len());
    }
    codec::encode_payload(&frame)
}

fn shrink_to_fit(responses: &mut [Response], mut total_bytes: usize) {
    let mut sizes: Vec<(usize, usize)> = responses
        .iter()
        .enumerate()
        .map(|(index, response)| (codec::encode_payload(response).len(), index))
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    for (size, index) in sizes {
        if total_bytes <= FRAME_BYTES_MAX {
            break;
        }
        let response = &mut responses[index];
        response.result = Err(too_large(size));
        total_bytes = total_bytes - size + codec::encode_payload(&*response).len();
    }
}

#[cfg(test)]
mod tests {
    use allot_protocol::{CellView, Reply};

    use super::*;

    fn cells(count: usize) -> Reply {
        let cell = CellView {
            sku: "S".repeat(64),
            location: "L".repeat(32),
            on_hand: 1,
            held: 0,
            allocated: 0,
            safety_stock: 0,
            available: 1,
        };
        Reply::Cells(vec![cell; count])
    }

    fn decode(payload: &[u8]) -> ServerFrame {
        codec::decode_server(payload).expect("a valid frame")
    }

    #[test]
    fn a_small_response_is_sent_as_it_is() {
        let response = Response { id: 3, result: Ok(cells(2)) };
        let payload = response_payload(response.clone());
        assert_eq!(decode(&payload), ServerFrame::Response(response));
    }

    #[test]
    fn a_response_over_the_frame_limit_becomes_frame_too_large() {
        let payload = response_payload(Response { id: 9, result: Ok(cells(40_000)) });
        assert!(payload.len() <= FRAME_BYTES_MAX);
        let ServerFrame::Response(response) = decode(&payload) else { panic!("not a response") };
        assert_eq!(response.id, 9);
        assert_eq!(response.result.unwrap_err().code, ErrorCode::FrameTooLarge);
    }

    #[test]
    fn an_oversized_batch_keeps_its_small_answers_and_its_order() {
        let responses = vec![
            Response { id: 1, result: Ok(cells(1)) },
            Response { id: 2, result: Ok(cells(30_000)) },
            Response { id: 3, result: Ok(cells(1)) },
            Response { id: 4, result: Ok(cells(30_000)) },
        ];
        let payload = batch_payload(responses);
        assert!(payload.len() <= FRAME_BYTES_MAX);
        let ServerFrame::Batch(answers) = decode(&payload) else { panic!("not a batch") };
        assert_eq!(answers.iter().map(|answer| answer.id).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(answers[0].result, Ok(cells(1)));
        assert_eq!(answers[2].result, Ok(cells(1)));
        let too_large = answers.iter().filter(|answer| answer.result.is_err()).count();
        assert!((1..=2).contains(&too_large), "{too_large}");
    }

    #[test]
    fn a_long_refusal_message_is_cut_at_a_character_boundary() {
        let error = shorten(Error::invalid("é".repeat(REFUSAL_MESSAGE_BYTES_MAX)));
        assert!(error.message.len() <= REFUSAL_MESSAGE_BYTES_MAX);
        assert!(error.message.chars().all(|c| c == 'é'));
    }
}
