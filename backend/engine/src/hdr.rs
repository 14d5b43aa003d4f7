//! `hdr_histogram`: an HDR latency histogram aggregate (3 significant digits, so any value read
//! back is within 0.1% of a recorded one), and the scalar functions that read it
//! (`hdr_quantile`, `hdr_count`, `hdr_buckets`).
//!
//! NB: the accumulator's state and its output are the same thing, the histogram in the V2
//! serialized form (Binary). So DataFusion may split the aggregate into partial and final steps
//! (PEMs run the partial one, Kelvin merges the states) and a merged state equals the histogram
//! of all the values.

use std::sync::Arc;

use arrow::{
    array::{Array, ArrayRef, AsArray, BinaryArray, Int64Array, StringArray},
    datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type},
};
use datafusion::{
    common::{DataFusionError, Result, ScalarValue, exec_err},
    logical_expr::{
        Accumulator, AggregateUDF, AggregateUDFImpl, ScalarUDF, Signature, Volatility,
        function::{AccumulatorArgs, StateFieldsArgs},
    },
};
use hdrhistogram::{
    Histogram,
    serialization::{Deserializer, Serializer, V2Serializer},
};

use crate::udf::SimpleUdf;

/// Significant digits kept: values read back are within 10^-3 of a recorded value.
pub(crate) const SIGFIG: u8 = 3;

/// An empty histogram that grows to fit what it records.
pub(crate) fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new(SIGFIG).map_err(|e| DataFusionError::Internal(format!("hdr histogram: {e}")))
}

/// The V2 serialized form.
pub(crate) fn serialize(h: &Histogram<u64>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut out)
        .map_err(|e| DataFusionError::Internal(format!("hdr histogram: {e:?}")))?;
    Ok(out)
}

/// Reads a V2 serialized histogram.
pub(crate) fn deserialize(bytes: &[u8]) -> Result<Histogram<u64>> {
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| {
            DataFusionError::Execution(format!(
                "not an hdr histogram (expected the output of hdr_histogram): {e:?}"
            ))
        })
}

/// `hdr_histogram(int) -> Binary`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct HdrUdaf {
    signature: Signature,
}

impl HdrUdaf {
    pub(crate) fn udaf() -> AggregateUDF {
        AggregateUDF::new_from_impl(Self {
            signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
        })
    }
}

impl AggregateUDFImpl for HdrUdaf {
    fn name(&self) -> &str {
        "hdr_histogram"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(HdrAccumulator::new()?))
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[hdr]", args.name),
            DataType::Binary,
            true,
        ))])
    }
}

/// One group's histogram.
#[derive(Debug)]
pub(crate) struct HdrAccumulator {
    h: Histogram<u64>,
}

impl HdrAccumulator {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            h: new_histogram()?,
        })
    }
}

impl Accumulator for HdrAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(v) = values
            .first()
            .and_then(|a| a.as_primitive_opt::<Int64Type>())
        else {
            return exec_err!("hdr_histogram takes one integer column");
        };
        // NB: latencies are never negative; a negative value (clock skew) counts as 0.
        for x in v.iter().flatten() {
            let x = u64::try_from(x).unwrap_or(0);
            // NB: `record` grows the histogram; only a value past u64's reach saturates.
            if self.h.record(x).is_err() {
                self.h.saturating_record(x);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(serialize(&self.h)?)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.h.distinct_values() * std::mem::size_of::<u64>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(s) = states.first().and_then(|a| a.as_binary_opt::<i32>()) else {
            return exec_err!("hdr_histogram: the partial state must be Binary");
        };
        for bytes in s.iter().flatten() {
            let other = deserialize(bytes)?;
            self.h
                .add(&other)
                .map_err(|e| DataFusionError::Execution(format!("hdr histogram merge: {e:?}")))?;
        }
        Ok(())
    }
}

fn histograms(a: &ArrayRef) -> Result<&BinaryArray> {
    match a.as_binary_opt::<i32>() {
        Some(b) => Ok(b),
        None => exec_err!(
            "expected an hdr histogram (from [col, \"hdr_histogram\"]), got {}",
            a.data_type()
        ),
    }
}

/// `hdr_quantile(h, q) -> Int64`: the value at quantile `q` (0..=1).
pub(crate) fn quantile_udf() -> ScalarUDF {
    SimpleUdf::udf(
        "hdr_quantile",
        Signature::exact(
            vec![DataType::Binary, DataType::Float64],
            Volatility::Immutable,
        ),
        |_| Ok(DataType::Int64),
        |a| {
            let h = histograms(&a[0])?;
            let Some(q) = a[1].as_primitive_opt::<Float64Type>() else {
                return exec_err!("hdr_quantile: the quantile must be a number like 0.99");
            };
            let out = h
                .iter()
                .zip(q.iter())
                .map(|(h, q)| match (h, q) {
                    (Some(h), Some(q)) => {
                        let h = deserialize(h)?;
                        Ok((!h.is_empty())
                            .then(|| h.value_at_quantile(q.clamp(0.0, 1.0)))
                            .map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
                    }
                    _ => Ok(None),
                })
                .collect::<Result<Int64Array>>()?;
            Ok(Arc::new(out) as ArrayRef)
        },
    )
}

/// `hdr_count(h) -> Int64`: how many values were recorded.
pub(crate) fn count_udf() -> ScalarUDF {
    SimpleUdf::udf(
        "hdr_count",
        Signature::exact(vec![DataType::Binary], Volatility::Immutable),
        |_| Ok(DataType::Int64),
        |a| {
            let out = histograms(&a[0])?
                .iter()
                .map(|h| {
                    h.map(|h| deserialize(h).map(|h| i64::try_from(h.len()).unwrap_or(i64::MAX)))
                        .transpose()
                })
                .collect::<Result<Int64Array>>()?;
            Ok(Arc::new(out) as ArrayRef)
        },
    )
}

/// `hdr_buckets(h) -> Utf8`: JSON `[{"le":ns,"count":n},...]`, buckets doubling from 1 ns,
/// from the first non-empty one to the last; `count` is the values in (previous le, le].
pub(crate) fn buckets_udf() -> ScalarUDF {
    SimpleUdf::udf(
        "hdr_buckets",
        Signature::exact(vec![DataType::Binary], Volatility::Immutable),
        |_| Ok(DataType::Utf8),
        |a| {
            let out = histograms(&a[0])?
                .iter()
                .map(|h| {
                    h.map(|h| deserialize(h).map(|h| buckets_json(&h)))
                        .transpose()
                })
                .collect::<Result<StringArray>>()?;
            Ok(Arc::new(out) as ArrayRef)
        },
    )
}

pub(crate) fn buckets_json(h: &Histogram<u64>) -> String {
    let buckets: Vec<serde_json::Value> = h
        .iter_log(1, 2.0)
        .map(|v| (v.value_iterated_to(), v.count_since_last_iteration()))
        .skip_while(|(_, n)| *n == 0)
        .map(|(le, count)| serde_json::json!({ "le": le, "count": count }))
        .collect();
    serde_json::Value::Array(buckets).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc_of(values: &[i64]) -> HdrAccumulator {
        let mut acc = HdrAccumulator::new().unwrap();
        let arr: ArrayRef = Arc::new(Int64Array::from(values.to_vec()));
        acc.update_batch(&[arr]).unwrap();
        acc
    }

    fn bytes(v: ScalarValue) -> Vec<u8> {
        match v {
            ScalarValue::Binary(Some(b)) => b,
            other => panic!("not binary: {other:?}"),
        }
    }

    #[test]
    fn merged_partial_states_equal_one_histogram_of_all_values() {
        let a: Vec<i64> = (1..5_000).map(|i| i * 937 % 1_000_003).collect();
        let b: Vec<i64> = (1..3_000).map(|i| i * i * 13).collect();
        let all: Vec<i64> = a.iter().chain(&b).copied().collect();

        let sa = acc_of(&a).state().unwrap().remove(0);
        let sb = acc_of(&b).state().unwrap().remove(0);
        let states: ArrayRef = Arc::new(BinaryArray::from_iter_values([
            bytes(sa).as_slice(),
            bytes(sb).as_slice(),
        ]));
        let mut merged = HdrAccumulator::new().unwrap();
        merged.merge_batch(&[states]).unwrap();
        let merged = deserialize(&bytes(merged.evaluate().unwrap())).unwrap();
        let whole = deserialize(&bytes(acc_of(&all).evaluate().unwrap())).unwrap();

        assert_eq!(merged.len(), all.len() as u64);
        assert_eq!(merged, whole);
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(merged.value_at_quantile(q), whole.value_at_quantile(q));
        }
    }

    #[test]
    fn quantiles_are_within_a_tenth_of_a_percent() {
        let values: Vec<i64> = (1..=100_000).collect();
        let h = deserialize(&bytes(acc_of(&values).evaluate().unwrap())).unwrap();
        for (q, exact) in [(0.5, 50_000.0), (0.9, 90_000.0), (0.99, 99_000.0)] {
            let got = h.value_at_quantile(q) as f64;
            assert!(
                (got - exact).abs() / exact <= 0.001,
                "q{q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn buckets_double_and_sum_to_the_count() {
        let h = deserialize(&bytes(acc_of(&[3, 3, 5, 100, 1000]).evaluate().unwrap())).unwrap();
        let json: serde_json::Value = serde_json::from_str(&buckets_json(&h)).unwrap();
        let arr = json.as_array().unwrap();
        let total: u64 = arr.iter().map(|b| b["count"].as_u64().unwrap()).sum();
        assert_eq!(total, 5);
        assert_eq!(arr[0]["le"], 3);
        assert_eq!(arr[0]["count"], 2);
        let les: Vec<u64> = arr.iter().map(|b| b["le"].as_u64().unwrap()).collect();
        assert!(les.windows(2).all(|w| w[1] > w[0]), "{les:?}");
    }
}
