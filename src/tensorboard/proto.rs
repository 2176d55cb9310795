//! The few protocol-buffer messages an event file holds, encoded by hand (field numbers from
//! TensorFlow's `event.proto` / `summary.proto` and TensorBoard's `hparams/plugin_data.proto`):
//! a dependency on a protobuf code generator for five small messages would cost more than it
//! saves.

/// A protobuf message under construction.
#[derive(Debug, Default, Clone)]
pub struct Message(Vec<u8>);

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const BYTES: u64 = 2;
const FIXED32: u64 = 5;

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u64, wire: u64) {
        self.varint((field << 3) | wire);
    }

    pub fn uint(mut self, field: u64, v: u64) -> Self {
        self.key(field, VARINT);
        self.varint(v);
        self
    }

    pub fn double(mut self, field: u64, v: f64) -> Self {
        self.key(field, FIXED64);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn float(mut self, field: u64, v: f32) -> Self {
        self.key(field, FIXED32);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(mut self, field: u64, v: &[u8]) -> Self {
        self.key(field, BYTES);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    pub fn string(self, field: u64, v: &str) -> Self {
        self.bytes(field, v.as_bytes())
    }

    pub fn message(self, field: u64, m: &Message) -> Self {
        self.bytes(field, &m.0)
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// `Event { wall_time = 1; step = 2; file_version = 3 }`: the first record of every file.
pub fn file_version_event(wall_time: f64) -> Vec<u8> {
    Message::default()
        .double(1, wall_time)
        .string(3, "brain.Event:2")
        .into_bytes()
}

/// `Event { wall_time = 1; step = 2; summary = 5 }` holding `Summary.Value { tag = 1;
/// simple_value = 2 }` per scalar.
pub fn scalars_event(wall_time: f64, step: u64, scalars: &[(String, f32)]) -> Vec<u8> {
    let mut summary = Message::default();
    for (tag, v) in scalars {
        let value = Message::default().string(1, tag).float(2, *v);
        summary = summary.message(1, &value);
    }
    Message::default()
        .double(1, wall_time)
        .uint(2, step)
        .message(5, &summary)
        .into_bytes()
}

/// A hyperparameter value (`google.protobuf.Value`).
#[derive(Debug, Clone, PartialEq)]
pub enum HParam {
    Number(f64),
    Text(String),
    Bool(bool),
}

/// The HParams plugin's session start: `Summary.Value { tag = "_hparams_/session_start_info";
/// metadata = 9 { plugin_data = 1 { plugin_name = 1: "hparams"; content = 2:
/// HParamsPluginData { version = 1: 0; session_start_info = 3 { hparams = 1 (map);
/// start_time_secs = 5 } } } } }`.
pub fn hparams_event(wall_time: f64, hparams: &[(String, HParam)]) -> Vec<u8> {
    let mut start = Message::default();
    for (key, v) in hparams {
        let value = match v {
            HParam::Number(x) => Message::default().double(2, *x),
            HParam::Text(s) => Message::default().string(3, s),
            HParam::Bool(b) => Message::default().uint(4, u64::from(*b)),
        };
        let entry = Message::default().string(1, key).message(2, &value);
        start = start.message(1, &entry);
    }
    start = start.double(5, wall_time);
    let content = Message::default().uint(1, 0).message(3, &start);
    let plugin = Message::default()
        .string(1, "hparams")
        .bytes(2, &content.into_bytes());
    let metadata = Message::default().message(1, &plugin);
    let value = Message::default()
        .string(1, "_hparams_/session_start_info")
        .message(9, &metadata);
    let summary = Message::default().message(1, &value);
    Message::default()
        .double(1, wall_time)
        .message(5, &summary)
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_encoded_as_protobuf_specifies() {
        // Varints: 150 is 0x96 0x01 (the protobuf guide's example).
        assert_eq!(
            Message::default().uint(1, 150).into_bytes(),
            [0x08, 0x96, 0x01]
        );
        assert_eq!(
            Message::default().string(2, "testing").into_bytes(),
            [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']
        );
        assert_eq!(
            Message::default().float(2, 1.0).into_bytes(),
            [0x15, 0, 0, 0x80, 0x3f]
        );
        let e = scalars_event(0.0, 3, &[("val/loss".into(), 0.5)]);
        assert_eq!(&e[..9], &[0x09, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&e[9..11], &[0x10, 3]);
    }
}
