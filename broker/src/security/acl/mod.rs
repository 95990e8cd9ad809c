//! Access control lists (KIP-11, with prefixed ACLs from KIP-290): Kafka's vocabulary
//! (`model.rs`), the pure authorizer that decides from the bindings (`authorizer.rs`),
//! the bindings kept in the metadata group (`store.rs`), the per-request context handlers
//! ask (`authz.rs`) and `phxq acl` (`admin.rs`). The ACL APIs are in
//! `handlers/{create,describe,delete}_acls.rs`.

pub mod admin;
pub mod authorizer;
pub mod authz;
pub mod model;
pub mod store;

#[cfg(test)]
mod authorizer_tests;

pub use authz::Authz;
pub use model::{AclOperation, ResourceType};
