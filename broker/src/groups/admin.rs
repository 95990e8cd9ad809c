//! `phxq group list|describe`: the admin view of consumer groups (to come).
