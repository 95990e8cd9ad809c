//! The BROKER config resource (type 4) in DescribeConfigs and the config-altering APIs:
//! which level a resource name means, and the DescribeConfigs view.
//!
//! As in Kafka: name "" is the cluster-wide defaults, and DescribeConfigs of it shows only
//! the dynamic defaults that are set (DYNAMIC_DEFAULT_BROKER_CONFIG); name "<id>" of the
//! broker answering shows every broker config phxq has, with the value in effect on it,
//! its source, synonyms, read-only flag, type and (v3+, when asked) documentation.
//! Describing another broker's id is INVALID_REQUEST ("Unexpected broker id"): clients
//! send it to that broker. Altering another broker's configs is accepted from any broker
//! of the cluster (Kafka only from that broker): they are kept in the metadata group.

use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::broker_configs::defs::{self, BrokerDef};
use crate::broker_configs::resolve::{resolve, Layers, DYNAMIC_DEFAULT_BROKER_CONFIG};
use crate::broker_configs::{Level, Values};
use crate::handlers::str;
use crate::handlers::topic_config::{entry, synonyms, wanted};

/// The broker id a resource name gives, with Kafka's message when it is not a number.
fn broker_id(name: &str) -> Result<i32, String> {
    name.parse::<i32>()
        .map_err(|_| format!("Broker id must be an integer, but it is: {name}"))
}

/// The level of dynamic configs an alteration of resource `name` changes: "" the
/// cluster-wide defaults, else a broker of the cluster.
pub fn level_to_alter(broker: &Broker, name: &str) -> Result<Level, String> {
    if name.is_empty() {
        return Ok(Level::Default);
    }
    let id = broker_id(name)?;
    let known = match &broker.config.cluster {
        Some(c) => c.broker(id as u64).is_some(),
        None => id == broker.node_id(),
    };
    if known {
        Ok(Level::Broker(id))
    } else {
        Err(format!(
            "Unexpected broker id {name}: no such broker in this cluster"
        ))
    }
}

fn describe_one(
    def: &BrokerDef,
    layers: &Layers,
    include_synonyms: bool,
    include_documentation: bool,
    only_defaults: bool,
) -> DescribeConfigsResourceResult {
    let mut r = resolve(layers, def);
    if only_defaults {
        // Kafka keeps only the cluster-default synonyms of the cluster-default resource.
        r.synonyms.retain(|s| s.2 == DYNAMIC_DEFAULT_BROKER_CONFIG);
    }
    let e = entry(
        def.name,
        r.value.clone().unwrap_or_default(),
        r.source,
        def.kind,
    )
    .with_read_only(!def.dynamic())
    .with_is_sensitive(false)
    .with_synonyms(synonyms(&r, include_synonyms))
    .with_documentation(include_documentation.then(|| str(def.doc)));
    // An unset config without a default (log.retention.minutes) has no value.
    if r.value.is_none() {
        e.with_value(None)
    } else {
        e
    }
}

/// DescribeConfigs of BROKER resource `name`: its configs, or (error code, message).
pub fn describe(
    broker: &Broker,
    name: &str,
    keys: Option<&[StrBytes]>,
    include_synonyms: bool,
    include_documentation: bool,
) -> Result<Vec<DescribeConfigsResourceResult>, String> {
    if name.is_empty() {
        let s = broker.broker_configs.snapshot();
        let none = Values::new();
        let layers = Layers {
            config: broker.broker_configs.static_config(),
            broker: &none,
            default: &s.default,
        };
        return Ok(s
            .default
            .keys()
            .filter(|n| wanted(keys, n))
            .filter_map(|n| defs::def(n))
            .map(|d| describe_one(d, &layers, include_synonyms, include_documentation, true))
            .collect());
    }
    if broker_id(name)? != broker.node_id() {
        return Err(format!(
            "Unexpected broker id, expected {} or empty string, but received {name}",
            broker.node_id()
        ));
    }
    Ok(broker.broker_configs.with_layers(|layers| {
        defs::all()
            .iter()
            .filter(|d| wanted(keys, d.name))
            .map(|d| describe_one(d, layers, include_synonyms, include_documentation, false))
            .collect()
    }))
}
