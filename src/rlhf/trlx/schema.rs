//! Serde types of TRLx's rollout files (`epoch-<time>.json`: a JSON list of rollouts).
//!
//! Reading is lenient where real logs vary: tensors may be flat lists or one row of a batch
//! (`[[1, 2, 3]]`, from `tensor.tolist()` with a batch dimension of 1) or a bare number (a
//! 0-d tensor); numbers may be ints or floats (`50256.0` is a valid token id). Every field is
//! optional here; which fields a rollout needs is decided in `read.rs`, which can name the
//! rollout. Unknown fields are ignored.

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;

/// One rollout as it appears in a file.
#[derive(Debug, Default, Deserialize)]
pub struct RawRollout {
    pub query_tensor: Option<Tensor<u32>>,
    pub response_tensor: Option<Tensor<u32>>,
    pub query_text: Option<String>,
    pub response_text: Option<String>,
    pub logprobs: Option<Tensor<f32>>,
    pub values: Option<Tensor<f32>>,
    pub rewards: Option<Tensor<f32>>,
    /// A number, or a one-element tensor.
    pub score: Option<Tensor<f32>>,
}

/// One rollout as adlab writes it (borrowing from a [`crate::rlhf::Rollout`]).
#[derive(Debug, Serialize)]
pub struct OutRollout<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_tensor: Option<&'a [u32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_tensor: Option<&'a [u32]>,
    pub query_text: &'a str,
    pub response_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<&'a [f32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<&'a [f32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewards: Option<&'a [f32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

/// A one-dimensional tensor: a flat list, a batch of one row, or a bare number.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<T>(pub Vec<T>);

/// What a tensor element can be, converted from whichever JSON number the log holds.
pub trait Element: Sized {
    const EXPECTED: &'static str;
    fn from_u64(v: u64) -> Option<Self>;
    fn from_i64(v: i64) -> Option<Self>;
    fn from_f64(v: f64) -> Option<Self>;
}

impl Element for u32 {
    const EXPECTED: &'static str = "a token id (an integer from 0 to 4294967295)";
    fn from_u64(v: u64) -> Option<u32> {
        u32::try_from(v).ok()
    }
    fn from_i64(v: i64) -> Option<u32> {
        u32::try_from(v).ok()
    }
    fn from_f64(v: f64) -> Option<u32> {
        (v.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&v)).then_some(v as u32)
    }
}

impl Element for f32 {
    const EXPECTED: &'static str = "a number";
    fn from_u64(v: u64) -> Option<f32> {
        Some(v as f32)
    }
    fn from_i64(v: i64) -> Option<f32> {
        Some(v as f32)
    }
    fn from_f64(v: f64) -> Option<f32> {
        Some(v as f32)
    }
}

fn convert<T: Element, E: de::Error>(v: Option<T>, shown: impl fmt::Display) -> Result<T, E> {
    v.ok_or_else(|| E::custom(format!("invalid value {shown}, expected {}", T::EXPECTED)))
}

/// A single number.
struct Num<T>(T);

impl<'de, T: Element> Deserialize<'de> for Num<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemVisitor::<T>(PhantomData, false))
            .map(|item| match item {
                Item::Num(v) => Num(v),
                Item::Row(_) => unreachable!("rows are refused when only numbers are allowed"),
            })
    }
}

/// A tensor's first element: a number (a flat list) or a row (a batch).
enum Item<T> {
    Num(T),
    Row(Vec<T>),
}

impl<'de, T: Element> Deserialize<'de> for Item<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemVisitor::<T>(PhantomData, true))
    }
}

/// Numbers always; a nested list only when the flag allows it.
struct ItemVisitor<T>(PhantomData<T>, bool);

impl<'de, T: Element> Visitor<'de> for ItemVisitor<T> {
    type Value = Item<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.1 {
            write!(f, "{} or a list of them", T::EXPECTED)
        } else {
            f.write_str(T::EXPECTED)
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item<T>, E> {
        convert(T::from_u64(v), v).map(Item::Num)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Item<T>, E> {
        convert(T::from_i64(v), v).map(Item::Num)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Item<T>, E> {
        convert(T::from_f64(v), v).map(Item::Num)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item<T>, A::Error> {
        if !self.1 {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        let mut row = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Num(v)) = seq.next_element::<Num<T>>()? {
            row.push(v);
        }
        Ok(Item::Row(row))
    }
}

impl<'de, T: Element> Deserialize<'de> for Tensor<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TensorVisitor::<T>(PhantomData))
    }
}

struct TensorVisitor<T>(PhantomData<T>);

impl<'de, T: Element> Visitor<'de> for TensorVisitor<T> {
    type Value = Tensor<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a list of {} (flat, or one row: [[...]])", T::EXPECTED)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tensor<T>, E> {
        convert(T::from_u64(v), v).map(|v| Tensor(vec![v]))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tensor<T>, E> {
        convert(T::from_i64(v), v).map(|v| Tensor(vec![v]))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tensor<T>, E> {
        convert(T::from_f64(v), v).map(|v| Tensor(vec![v]))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tensor<T>, A::Error> {
        match seq.next_element::<Item<T>>()? {
            None => Ok(Tensor(Vec::new())),
            Some(Item::Row(row)) => {
                let mut rows = 1;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    rows += 1;
                }
                if rows > 1 {
                    return Err(de::Error::custom(format!(
                        "a batch of {rows} rows; expected one rollout's tensor (a flat list, or \
                         a batch of one row [[...]])"
                    )));
                }
                Ok(Tensor(row))
            }
            Some(Item::Num(first)) => {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0) + 1);
                out.push(first);
                while let Some(Num(v)) = seq.next_element::<Num<T>>()? {
                    out.push(v);
                }
                Ok(Tensor(out))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(json: &str) -> Result<Vec<u32>, String> {
        serde_json::from_str::<Tensor<u32>>(json)
            .map(|t| t.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn tensors_may_be_flat_one_row_or_a_number_of_ints_or_floats() {
        assert_eq!(ids("[1, 2, 3]").unwrap(), [1, 2, 3]);
        assert_eq!(ids("[[1, 2, 3]]").unwrap(), [1, 2, 3]);
        assert_eq!(ids("[50256.0, 7]").unwrap(), [50256, 7]);
        assert_eq!(ids("[]").unwrap(), Vec::<u32>::new());
        assert_eq!(ids("[[]]").unwrap(), Vec::<u32>::new());
        assert_eq!(ids("5").unwrap(), [5]);
        let f: Tensor<f32> = serde_json::from_str("[[1, -0.5, 2e-3]]").unwrap();
        assert_eq!(f.0, [1.0, -0.5, 2e-3]);
    }

    #[test]
    fn bad_tensors_are_refused_with_what_was_expected() {
        let e = ids("[[1, 2], [3, 4]]").unwrap_err();
        assert!(e.contains("a batch of 2 rows"), "{e}");
        let e = ids("[1.5]").unwrap_err();
        assert!(e.contains("invalid value 1.5, expected a token id"), "{e}");
        let e = ids("[-1]").unwrap_err();
        assert!(e.contains("expected a token id"), "{e}");
        let e = ids("[[[1]]]").unwrap_err();
        assert!(e.contains("expected a token id"), "{e}");
        let e = ids("[1, [2]]").unwrap_err();
        assert!(e.contains("expected a token id"), "{e}");
        let e = ids("\"abc\"").unwrap_err();
        assert!(e.contains("expected a list of a token id"), "{e}");
    }

    #[test]
    fn rollouts_ignore_unknown_fields_and_missing_ones_are_none() {
        let r: Vec<RawRollout> =
            serde_json::from_str(r#"[{"query_text": "q", "extra": {"a": 1}, "rewards": null}]"#)
                .unwrap();
        assert_eq!(r[0].query_text.as_deref(), Some("q"));
        assert!(r[0].rewards.is_none() && r[0].response_tensor.is_none());
    }
}
