//! The wire codec on the request path: decoding a client's frame (one-line hold, and a
//! batch of 64) and encoding the answer, as the server does for every request.
//! `cargo bench -p allot-bench --bench protocol`.

use std::hint::black_box;

use allot_protocol::codec::{self, decode_client, encode_payload};
use allot_protocol::{
    ClientFrame, Command, LineRequest, Reply, Request, RequestBody, Response, ServerFrame,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCH_REQUESTS: usize = 64;

fn hold_request(id: u64) -> Request {
    let line = LineRequest {
        sku: format!("SKU-{:06}", id % 100_000),
        location: "LOC-017".into(),
        quantity: 1,
    };
    let command = Command::Reserve { lines: vec![line], ttl_ms: Some(3_600_000) };
    let idempotency_key = Some(format!("0123456789abcdef0123456789abcdef-{id}"));
    Request { id, body: RequestBody::Command { idempotency_key, command } }
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire_decode");
    let one = encode_payload(&ClientFrame::Request(hold_request(42)));
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_line_hold", |b| b.iter(|| decode_client(black_box(&one))));
    let batch = ClientFrame::Batch((0..BATCH_REQUESTS as u64).map(hold_request).collect());
    let batch = encode_payload(&batch);
    group.throughput(Throughput::Elements(BATCH_REQUESTS as u64));
    group.bench_function("batch_of_64_holds", |b| b.iter(|| decode_client(black_box(&batch))));
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire_encode");
    let answer = ServerFrame::Response(Response {
        id: 42,
        result: Ok(Reply::HoldPlaced { hold: 1_234_567, expires_at_ms: 1_795_000_000_000 }),
    });
    let mut out = Vec::with_capacity(64);
    group.throughput(Throughput::Elements(1));
    group.bench_function("hold_placed_frame", |b| {
        b.iter(|| {
            out.clear();
            codec::write_frame(black_box(&answer), &mut out);
        })
    });
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
