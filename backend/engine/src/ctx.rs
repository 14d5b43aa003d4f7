//! `ctx(key)`: a scalar function from a row's `upid` to its service, pod, ... via
//! [`Metadata`], looked up once per distinct upid in a batch (a batch holds few processes).
//! `px::addr_ctx(addr, key)` is the same over an address column ([`Metadata::addr`]): the pod,
//! service, namespace or node a remote address belongs to in the cluster.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::Arc,
};

use arrow::{
    array::{Array, ArrayRef, StringArray, StringBuilder},
    datatypes::DataType,
};
use datafusion::{
    common::{Result, ScalarValue, exec_err},
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};
use pxtop_metadata::{CtxKey, Metadata};

/// `ctx_<key>(upid) -> Utf8`; unknown processes give an empty string, as in Pixie.
#[derive(Debug)]
pub(crate) struct CtxUdf {
    name: String,
    key: CtxKey,
    /// Whether the argument is an address (`Metadata::addr`) rather than a upid.
    by_addr: bool,
    metadata: Arc<dyn Metadata + Send + Sync>,
    signature: Signature,
}

impl CtxUdf {
    pub(crate) fn udf(metadata: Arc<dyn Metadata + Send + Sync>, key: CtxKey) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            name: format!("ctx_{key}"),
            key,
            by_addr: false,
            metadata,
            // NB: Volatile so the optimizer never constant-folds it at plan time; the answer
            // depends on metadata learnt while the query runs.
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
        })
    }

    /// `addr_<key>(addr) -> Utf8`: what the address is in the cluster; empty when unknown
    /// (always, locally).
    pub(crate) fn addr_udf(metadata: Arc<dyn Metadata + Send + Sync>, key: CtxKey) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            name: format!("addr_{key}"),
            key,
            by_addr: true,
            metadata,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
        })
    }

    fn lookup(&self, arg: &str) -> String {
        if self.by_addr {
            self.metadata.addr(arg, self.key)
        } else {
            self.metadata.ctx(arg, self.key)
        }
        .unwrap_or_default()
    }
}

impl PartialEq for CtxUdf {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
            && self.by_addr == other.by_addr
            && Arc::ptr_eq(&self.metadata, &other.metadata)
    }
}

impl Eq for CtxUdf {}

impl Hash for CtxUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for CtxUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!(
                "{} takes one argument (a upid or address column)",
                self.name
            );
        };
        match arg {
            ColumnarValue::Scalar(ScalarValue::Utf8(v)) => Ok(ColumnarValue::Scalar(
                ScalarValue::Utf8(v.as_deref().map(|u| self.lookup(u))),
            )),
            ColumnarValue::Scalar(other) => {
                exec_err!("{} expects a string upid, got {other:?}", self.name)
            }
            ColumnarValue::Array(a) => {
                let Some(upids) = a.as_any().downcast_ref::<StringArray>() else {
                    return exec_err!(
                        "{} expects a Utf8 upid column, got {}",
                        self.name,
                        a.data_type()
                    );
                };
                let mut cache: HashMap<&str, String> = HashMap::new();
                let mut out = StringBuilder::with_capacity(upids.len(), upids.len() * 8);
                for u in upids.iter() {
                    match u {
                        Some(u) => {
                            let v = cache.entry(u).or_insert_with(|| self.lookup(u));
                            out.append_value(v);
                        }
                        None => out.append_null(),
                    }
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
            }
        }
    }
}
