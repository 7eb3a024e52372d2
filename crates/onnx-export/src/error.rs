use thiserror::Error;

/// Why a network could not be exported.
#[derive(Debug, Error)]
pub enum ExportError {
    /// A variable the plan needs is missing or has the wrong shape.
    #[error("{source_name}: variable {name}: {problem}")]
    Weight {
        source_name: String,
        name: String,
        problem: String,
    },
    /// The plan holds something the exporter has no ONNX form for.
    #[error("{scope}: {problem}")]
    Unsupported { scope: String, problem: String },
    /// Reading a variable's values failed.
    #[error(transparent)]
    Read(#[from] nasnet_forward::ForwardError),
    /// Writing the model or its data failed.
    #[error("writing {what}: {source}")]
    Write {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The weights are too large for one protobuf message.
    #[error("the weights take {bytes} bytes, more than one ONNX file can hold ({max}); export with external data")]
    TooLargeToEmbed { bytes: u64, max: u64 },
}
