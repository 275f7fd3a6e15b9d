//! The SQL both stores run (INPUT-10: every statement a literal, every
//! value a bound parameter), written once with PostgreSQL's `$n`
//! placeholders; [`Dialect::render`] gives SQLite its `?n`. What only one
//! engine has stays with its backend: the migrations (column types,
//! PostgreSQL's change triggers), locking (`BEGIN IMMEDIATE` against
//! advisory locks) and the one statement PostgreSQL needs a type cast in.

use std::borrow::Cow;

/// The SQL engine a statement is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `stmt` with this engine's placeholders: `$n` stays for PostgreSQL
    /// and becomes `?n` for SQLite (a `$` before a digit, nowhere else).
    pub fn render(self, stmt: &'static str) -> Cow<'static, str> {
        if self == Dialect::Postgres || !stmt.contains('$') {
            return Cow::Borrowed(stmt);
        }
        let mut out = String::with_capacity(stmt.len());
        let mut chars = stmt.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                out.push('?');
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }
}

/// The snapshot: applications.
pub const APPS: &str = "SELECT id, name, enabled, created_at FROM applications";
/// The snapshot: API keys not revoked.
pub const ACTIVE_KEYS: &str = "SELECT id, app_id, mac, created_at, expires_at, revoked_at FROM api_keys WHERE revoked_at IS NULL";
/// The snapshot: token revocations.
pub const REVOCATIONS: &str =
    "SELECT issuer, jti, subject, revoked_before, expires_at FROM token_revocations";
/// The snapshot: kill switches.
pub const KILL_SWITCHES: &str = "SELECT target, reason FROM kill_switches";
/// The snapshot: client certificates bound to applications.
pub const CERT_APPS: &str = "SELECT san, app_id FROM app_certificates";
pub const BIND_CERT: &str =
    "INSERT INTO app_certificates (san, app_id, created_at) VALUES ($1, $2, $3)";
pub const UNBIND_CERT: &str = "DELETE FROM app_certificates WHERE san = $1";
pub const CERT_BINDINGS: &str = "SELECT b.san, a.name FROM app_certificates b JOIN applications a ON a.id = b.app_id ORDER BY b.san";
pub const CREATE_ADMIN: &str = "INSERT INTO admins (id, name, role, mac, created_at, disabled_at) VALUES ($1, $2, $3, $4, $5, $6)";
pub const ADMIN: &str =
    "SELECT id, name, role, mac, created_at, disabled_at FROM admins WHERE id = $1";
pub const ADMINS: &str =
    "SELECT id, name, role, mac, created_at, disabled_at FROM admins ORDER BY name";
pub const SET_KILL_SWITCH: &str = "INSERT INTO kill_switches (target, reason, actor, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (target) DO UPDATE SET reason = excluded.reason, actor = excluded.actor, created_at = excluded.created_at";
pub const CLEAR_KILL_SWITCH: &str = "DELETE FROM kill_switches WHERE target = $1";
/// The audit chain's last link, read before appending one.
pub const AUDIT_HEAD_ROW: &str = "SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1";
pub const APPEND_AUDIT: &str = "INSERT INTO audit_log (seq, entry, mac) VALUES ($1, $2, $3)";
/// The chain's head, kept apart so a truncated log is noticed.
pub const SET_AUDIT_HEAD: &str = "INSERT INTO store_meta (name, value) VALUES ('audit_head', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value";
pub const AUDIT_ROWS: &str = "SELECT seq, entry, mac FROM audit_log ORDER BY seq";
pub const AUDIT_HEAD: &str = "SELECT value FROM store_meta WHERE name = 'audit_head'";
pub const SET_PEPPER_CHECK: &str = "INSERT INTO store_meta (name, value) VALUES ('pepper_check', $1) ON CONFLICT (name) DO NOTHING";
pub const PEPPER_CHECK: &str = "SELECT value FROM store_meta WHERE name = 'pepper_check'";
pub const SET_APP_ENABLED: &str = "UPDATE applications SET enabled = $1 WHERE name = $2";
pub const APPS_BY_NAME: &str =
    "SELECT id, name, enabled, created_at FROM applications ORDER BY name";
pub const APP_BY_NAME: &str =
    "SELECT id, name, enabled, created_at FROM applications WHERE name = $1";
pub const INSERT_KEY: &str = "INSERT INTO api_keys (id, app_id, mac, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)";
pub const REVOKE_KEY: &str =
    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
pub const EXPIRE_KEYS: &str = "UPDATE api_keys SET expires_at = $1 WHERE app_id = $2 AND id != $3 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)";
pub const REVOKE_TOKEN: &str = "INSERT INTO token_revocations (issuer, jti, subject, revoked_before, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (issuer, jti) WHERE jti IS NOT NULL DO NOTHING";
pub const PURGE_REVOCATIONS: &str = "DELETE FROM token_revocations WHERE expires_at < $1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_gets_question_mark_placeholders_and_postgres_the_text_as_written() {
        assert_eq!(
            Dialect::Sqlite.render(REVOKE_KEY),
            "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL"
        );
        assert_eq!(Dialect::Postgres.render(REVOKE_KEY), REVOKE_KEY);
        assert_eq!(
            Dialect::Sqlite.render("SELECT '$x', $12"),
            "SELECT '$x', ?12"
        );
    }
}
