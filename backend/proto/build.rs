//! Generates the tonic client and server from `proto/pxtop.proto` with Debian's `protoc`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/pxtop.proto");
    tonic_prost_build::configure().compile_protos(&["proto/pxtop.proto"], &["proto"])?;
    Ok(())
}
