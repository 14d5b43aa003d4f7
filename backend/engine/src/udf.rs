//! Small scalar functions of the dialect that DataFusion lacks: `px::bin` (floor to a window,
//! keeping timestamps timestamps), `px::format_duration` and `px::format_bytes`. Each is a plain
//! function over arrays wrapped in one [`ScalarUDFImpl`].

use std::{
    hash::{Hash, Hasher},
    sync::Arc,
};

use arrow::{
    array::{Array, ArrayRef, AsArray, Int64Array, StringArray, TimestampNanosecondArray},
    datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampNanosecondType},
};
use datafusion::{
    common::{Result, ScalarValue, exec_err, plan_err},
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};

type Body = fn(&[ArrayRef]) -> Result<ArrayRef>;
type Returns = fn(&[DataType]) -> Result<DataType>;

/// A scalar function given by its name, signature, return type and body over arrays.
#[derive(Debug)]
pub(crate) struct SimpleUdf {
    name: &'static str,
    signature: Signature,
    returns: Returns,
    body: Body,
}

impl SimpleUdf {
    pub(crate) fn udf(
        name: &'static str,
        signature: Signature,
        returns: Returns,
        body: Body,
    ) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            name,
            signature,
            returns,
            body,
        })
    }
}

impl PartialEq for SimpleUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for SimpleUdf {}

impl Hash for SimpleUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for SimpleUdf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        (self.returns)(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out = (self.body)(&arrays)?;
        if all_scalar && out.len() == 1 {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(out))
    }
}

fn utf8(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Utf8)
}

/// `format_duration(ns)`: `"850 ns"`, `"1.23 ms"`, `"2.5 s"`, `"3.2 min"`, `"1.5 h"`.
pub(crate) fn format_duration_udf() -> ScalarUDF {
    SimpleUdf::udf(
        "format_duration",
        Signature::uniform(1, vec![DataType::Float64], Volatility::Immutable),
        utf8,
        |a| map_f64(&a[0], format_duration),
    )
}

/// `format_bytes(n)`: `"512 B"`, `"1.2 KiB"`, `"3.45 MiB"` (powers of 1024).
pub(crate) fn format_bytes_udf() -> ScalarUDF {
    SimpleUdf::udf(
        "format_bytes",
        Signature::uniform(1, vec![DataType::Float64], Volatility::Immutable),
        utf8,
        |a| map_f64(&a[0], format_bytes),
    )
}

fn map_f64(a: &ArrayRef, f: fn(f64) -> String) -> Result<ArrayRef> {
    let Some(v) = a.as_primitive_opt::<Float64Type>() else {
        return exec_err!("expected a number column, got {}", a.data_type());
    };
    let out: StringArray = v.iter().map(|x| x.map(f)).collect();
    Ok(Arc::new(out))
}

/// Three significant digits, trailing zeros dropped: 1.234 -> "1.23", 2.50 -> "2.5", 850 -> "850".
fn sig3(v: f64) -> String {
    let a = v.abs();
    let decimals = if a < 10.0 {
        2
    } else if a < 100.0 {
        1
    } else {
        0
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub(crate) fn format_duration(ns: f64) -> String {
    const UNITS: [(f64, &str); 5] = [
        (3_600e9, "h"),
        (60e9, "min"),
        (1e9, "s"),
        (1e6, "ms"),
        (1e3, "µs"),
    ];
    let a = ns.abs();
    for (scale, unit) in UNITS {
        if a >= scale {
            return format!("{} {unit}", sig3(ns / scale));
        }
    }
    format!("{} ns", sig3(ns))
}

pub(crate) fn format_bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let a = n.abs();
    if a < 1024.0 {
        return format!("{} B", sig3(n));
    }
    let mut scale = 1024.0;
    for (i, unit) in UNITS.iter().enumerate() {
        if a < scale * 1024.0 || i == UNITS.len() - 1 {
            return format!("{} {unit}", sig3(n / scale));
        }
        scale *= 1024.0;
    }
    format!("{} B", sig3(n))
}

/// `bin(x, window_ns)`: `x` floored to a multiple of the window; timestamps stay timestamps
/// (time zone kept), integers stay integers.
pub(crate) fn bin_udf() -> ScalarUDF {
    SimpleUdf::udf(
        "px_bin",
        Signature::any(2, Volatility::Immutable),
        |t| match t {
            [
                DataType::Int64 | DataType::Timestamp(TimeUnit::Nanosecond, _),
                DataType::Int64,
            ] => Ok(t[0].clone()),
            [x, _] => plan_err!(
                "px::bin needs a time or integer column (like df.time_), got {x}; cast it with \
                 .cast(\"int\")"
            ),
            _ => plan_err!("px::bin takes (column, window)"),
        },
        |a| {
            let Some(w) = a[1].as_primitive_opt::<Int64Type>() else {
                return exec_err!("px::bin: the window must be an integer");
            };
            let floor = |v: Option<i64>, w: Option<i64>| match (v, w) {
                (Some(v), Some(w)) if w > 0 => Some(v.div_euclid(w) * w),
                _ => None,
            };
            if let Some(ts) = a[0].as_primitive_opt::<TimestampNanosecondType>() {
                let out: TimestampNanosecondArray =
                    ts.iter().zip(w.iter()).map(|(v, w)| floor(v, w)).collect();
                return Ok(Arc::new(out.with_timezone_opt(ts.timezone())));
            }
            if let Some(xs) = a[0].as_primitive_opt::<Int64Type>() {
                let out: Int64Array = xs.iter().zip(w.iter()).map(|(v, w)| floor(v, w)).collect();
                return Ok(Arc::new(out));
            }
            exec_err!("px::bin: unsupported type {}", a[0].data_type())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_three_significant_digits() {
        assert_eq!(format_duration(850.0), "850 ns");
        assert_eq!(format_duration(0.0), "0 ns");
        assert_eq!(format_duration(1_234.0), "1.23 µs");
        assert_eq!(format_duration(1_234_567.0), "1.23 ms");
        assert_eq!(format_duration(2_500_000_000.0), "2.5 s");
        assert_eq!(format_duration(45_000_000_000.0), "45 s");
        assert_eq!(format_duration(90e9), "1.5 min");
        assert_eq!(format_duration(7_200e9), "2 h");
        assert_eq!(format_duration(-1_500_000.0), "-1.5 ms");
    }

    #[test]
    fn bytes_read_in_powers_of_1024() {
        assert_eq!(format_bytes(0.0), "0 B");
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(1024.0), "1 KiB");
        assert_eq!(format_bytes(1_258_291.0), "1.2 MiB");
        assert_eq!(format_bytes(3.5 * 1024.0 * 1024.0 * 1024.0), "3.5 GiB");
        assert_eq!(format_bytes(150.0 * 1024.0), "150 KiB");
    }
}
