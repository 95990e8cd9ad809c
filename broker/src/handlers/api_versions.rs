//! ApiVersions (18): the APIs and version ranges this broker serves. Only what works is
//! listed; the decoder refuses everything else. The list itself is
//! `phxq_protocol::supported::SUPPORTED` (the fuzz harness decodes with it too).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ResponseKind};
use phxq_protocol::errors;

pub use phxq_protocol::supported::{supported, SUPPORTED};

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(k, min, max)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

pub fn handle(_req: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(errors::NONE)
        .with_api_keys(api_keys())
}

/// The v0 answer to an ApiVersions request of a version we do not serve.
pub fn unsupported_version_response() -> ResponseKind {
    ResponseKind::ApiVersions(
        ApiVersionsResponse::default()
            .with_error_code(errors::UNSUPPORTED_VERSION)
            .with_api_keys(api_keys()),
    )
}
