//! The web console: read-only pages about this broker and what it knows of the cluster,
//! served on the metrics listener (`metrics_listen`) under `/console/`, with `/`
//! redirecting there. It owns
//!
//! - the pages: cluster ([`cluster`]), topics and one topic's partitions ([`topics`]),
//!   consumer groups and one group's members, assignment and lag ([`groups`]), and the
//!   message browser of one partition ([`messages`]);
//! - a JSON twin of every page under `/console/api/` (the same view, serialized), which
//!   the pages' script polls for rates and the lag plot;
//! - the static assets ([`assets`]: one stylesheet, one small script), compiled into the
//!   binary: no build step, nothing fetched at run time.
//!
//! Each page module reads the broker's in-process state into a plain view (`gather`), and
//! turns a view into HTML or JSON with pure functions (`render`, serde). HTML is written
//! with maud, which escapes every interpolated value; record bytes that are not clean
//! UTF-8 text are shown escaped (`\xNN`), and long values are cut with a marker. The
//! console depends on the domain modules, never the other way round; `metrics::http`
//! only hands it the requests whose path is `/` or under `/console`.
//!
//! On a cluster the console shows what this broker knows: sizes and offsets of the
//! partitions it leads (the others show their leader's id), the groups it coordinates,
//! and the Raft state of the store groups it hosts as this node sees them.

pub mod assets;
pub mod cluster;
pub mod groups;
pub mod layout;
pub mod messages;
pub mod query;
pub mod topics;

use std::sync::Arc;

use bytes::Bytes;
use maud::Markup;
use serde::Serialize;

use crate::broker::Broker;
use query::Query;

/// What the console answers; `metrics::http` turns it into an HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
    /// A redirect's target.
    pub location: Option<&'static str>,
}

pub const HTML: &str = "text/html; charset=utf-8";
pub const JSON: &str = "application/json";

/// The Content-Security-Policy of every console answer: scripts, styles and everything
/// else only from the console itself, no inline script; a value that slipped through
/// unescaped still could not run.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// A request the console refuses or cannot answer: a status and why, shown as a page or
/// as `{"error": ...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub message: String,
}

impl Failure {
    pub fn bad_request(message: impl Into<String>) -> Failure {
        Failure {
            status: 400,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure {
            status: 404,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Failure {
        Failure {
            status: 503,
            message: message.into(),
        }
    }
}

/// Whether `path` is the console's (`metrics::http` hands those over).
pub fn owns(path: &str) -> bool {
    path == "/" || path == "/console" || path.starts_with("/console/")
}

/// Answers a GET of `path` (one of [`owns`]) with its query string.
pub async fn answer(broker: Arc<Broker>, path: &str, query: Option<&str>) -> Reply {
    if path == "/" || path == "/console" {
        return Reply {
            status: 302,
            content_type: "text/plain; charset=utf-8",
            body: Bytes::from_static(b"see /console/\n"),
            location: Some("/console/"),
        };
    }
    let rest = &path["/console/".len()..];
    if let Some(name) = rest.strip_prefix("assets/") {
        return match assets::get(name) {
            Some((content_type, body)) => Reply {
                status: 200,
                content_type,
                body: Bytes::from_static(body),
                location: None,
            },
            None => page_failure(&Failure::not_found(format!("no asset {name:?}"))),
        };
    }
    let q = match Query::parse(query.unwrap_or("")) {
        Ok(q) => q,
        Err(f) => return failure(rest.starts_with("api/"), &f),
    };
    match rest.strip_prefix("api/") {
        Some(api) => match json_view(&broker, api, &q).await {
            Ok(body) => Reply {
                status: 200,
                content_type: JSON,
                body: Bytes::from(body),
                location: None,
            },
            Err(f) => json_failure(&f),
        },
        None => match page(&broker, rest, &q).await {
            Ok(m) => Reply {
                status: 200,
                content_type: HTML,
                body: Bytes::from(m.into_string()),
                location: None,
            },
            Err(f) => page_failure(&f),
        },
    }
}

async fn page(b: &Arc<Broker>, rest: &str, q: &Query) -> Result<Markup, Failure> {
    Ok(match rest {
        "" => cluster::render(&cluster::gather(b)),
        "topics" => topics::render_list(&topics::gather_list(b)),
        "topic" => topics::render_topic(&topics::gather_topic(b, q)?),
        "groups" => groups::render_list(&groups::gather_list(b)),
        "group" => groups::render_group(&groups::gather_group(b, q).await?),
        "messages" => messages::render(&messages::gather(b, q).await?),
        _ => return Err(not_found(rest)),
    })
}

async fn json_view(b: &Arc<Broker>, api: &str, q: &Query) -> Result<Vec<u8>, Failure> {
    match api {
        "cluster" => to_json(&cluster::gather(b)),
        "topics" => to_json(&topics::gather_list(b)),
        "topic" => to_json(&topics::gather_topic(b, q)?),
        "groups" => to_json(&groups::gather_list(b)),
        "group" => to_json(&groups::gather_group(b, q).await?),
        "messages" => to_json(&messages::gather(b, q).await?),
        _ => Err(not_found(&format!("api/{api}"))),
    }
}

fn not_found(rest: &str) -> Failure {
    Failure::not_found(format!(
        "no console page /console/{rest}: try /console/, topics, groups, messages"
    ))
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(v).map_err(|e| Failure {
        status: 500,
        message: format!("cannot encode the answer as JSON: {e}"),
    })
}

fn failure(api: bool, f: &Failure) -> Reply {
    if api {
        json_failure(f)
    } else {
        page_failure(f)
    }
}

fn json_failure(f: &Failure) -> Reply {
    Reply {
        status: f.status,
        content_type: JSON,
        body: Bytes::from(serde_json::json!({ "error": f.message }).to_string()),
        location: None,
    }
}

fn page_failure(f: &Failure) -> Reply {
    Reply {
        status: f.status,
        content_type: HTML,
        body: Bytes::from(layout::failure_page(f).into_string()),
        location: None,
    }
}
