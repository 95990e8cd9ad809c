//! Health for load balancers and orchestrators: live (the process answers) and ready
//! (this broker can serve what it leads: its storage writes, the metadata group and every
//! store group it hosts have a leader).

use crate::broker::Broker;

/// Ok, or why this broker is not ready.
pub fn ready(b: &Broker) -> Result<(), Vec<String>> {
    let mut why = Vec::new();
    if b.node.storage_failed() {
        why.push(
            "a storage write failed; the broker restarts itself once disk space is back".into(),
        );
    }
    if b.disk.low() {
        why.push("free disk space is below the floor: produce is refused".into());
    }
    for st in b.node.status() {
        if st.leader.is_none() {
            why.push(format!(
                "store group {} has no leader (term {})",
                st.group.0, st.term
            ));
        }
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why)
    }
}
