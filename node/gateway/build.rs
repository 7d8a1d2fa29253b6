//! Generates the `WalletGateway` service code (server and client) with
//! tonic-prost-build from a `protox` descriptor set, so building needs no
//! system `protoc`. The messages are not generated here: `extern_path` points
//! them at `yuchain_proto::pb`, which generates them from the same files, so
//! each type exists once.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let include = "../../proto/proto";
    let files = ["yuchain/v1/gateway.proto", "yuchain/v1/ledger.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={include}/{file}");
    }
    let descriptors = protox::compile(["yuchain/v1/gateway.proto"], [include])?;
    // The descriptor set (the gateway's file and what it imports) for the
    // gRPC reflection service.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("gateway_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(true)
        .extern_path(".yuchain.v1", "::yuchain_proto::pb")
        .compile_fds(descriptors)?;
    Ok(())
}
