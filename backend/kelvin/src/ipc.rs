//! Arrow IPC framing of result tables: each gRPC message carries one complete IPC stream
//! (schema + batches) of at most about [`TARGET_MESSAGE_BYTES`], so clients decode each message
//! on its own and no message approaches gRPC's size limit. An empty table still sends its
//! schema, so clients see every output table.

use arrow::{
    array::RecordBatch, datatypes::SchemaRef, error::ArrowError, ipc::writer::StreamWriter,
};

/// Aim for messages of about this size.
pub const TARGET_MESSAGE_BYTES: usize = 2 << 20;
/// The largest message the service sends or accepts.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Encodes a table as IPC streams of at most about [`TARGET_MESSAGE_BYTES`] each.
pub fn encode_table(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<Vec<u8>>, ArrowError> {
    let mut out = Vec::new();
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_bytes = 0usize;
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        for part in split(b) {
            let size = part.get_array_memory_size();
            if !pending.is_empty() && pending_bytes + size > TARGET_MESSAGE_BYTES {
                out.push(stream(schema, &pending)?);
                pending.clear();
                pending_bytes = 0;
            }
            pending_bytes += size;
            pending.push(part);
        }
    }
    if !pending.is_empty() || out.is_empty() {
        out.push(stream(schema, &pending)?);
    }
    Ok(out)
}

/// Slices a batch into parts of about [`TARGET_MESSAGE_BYTES`].
fn split(b: &RecordBatch) -> Vec<RecordBatch> {
    let size = b.get_array_memory_size().max(1);
    let parts = size.div_ceil(TARGET_MESSAGE_BYTES).max(1);
    if parts == 1 {
        return vec![b.clone()];
    }
    let rows = b.num_rows().div_ceil(parts).max(1);
    (0..b.num_rows())
        .step_by(rows)
        .map(|o| b.slice(o, rows.min(b.num_rows() - o)))
        .collect()
}

fn stream(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut w = StreamWriter::try_new(Vec::new(), schema)?;
    for b in batches {
        w.write(b)?;
    }
    w.into_inner()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use arrow::ipc::reader::StreamReader;
    use pxtop_store::fixtures;

    use super::*;

    fn decode(bytes: &[u8]) -> Vec<RecordBatch> {
        StreamReader::try_new(Cursor::new(bytes), None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn large_tables_split_into_bounded_self_contained_messages() {
        let batches = fixtures::http_events(100_000, 0, 3);
        let schema = batches[0].schema();
        let msgs = encode_table(&schema, &batches).unwrap();
        assert!(msgs.len() > 1);
        let mut rows = 0;
        for m in &msgs {
            assert!(m.len() < MAX_MESSAGE_BYTES, "{}", m.len());
            rows += decode(m).iter().map(RecordBatch::num_rows).sum::<usize>();
        }
        assert_eq!(rows, 100_000);
    }

    #[test]
    fn an_empty_table_still_sends_its_schema() {
        let schema = pxtop_store::schema::http_events();
        let msgs = encode_table(&schema, &[]).unwrap();
        assert_eq!(msgs.len(), 1);
        let r = StreamReader::try_new(Cursor::new(&msgs[0]), None).unwrap();
        assert_eq!(r.schema().fields().len(), schema.fields().len());
    }
}
