//! `siwa-server doctor`: what is wrong with an Apple set-up (`setup`) or with an identity token
//! (`token`), in words a developer acts on.
//!
//! Set-up problems are what teams lose days to with Sign in with Apple: Apple answers
//! `invalid_client` for a dozen different mistakes and a server refuses a token for an audience
//! nobody sees. The doctor makes each check once, in order, and says for each what was checked,
//! whether it holds, and what to do. It reads the configuration `serve` reads and changes
//! nothing: no migration, no key file, no row, and no event in the webhook outbox.

mod setup;
mod token;

use serde::Serialize;

pub use setup::check_setup;
pub use token::{ClaimLine, TokenOptions, TokenReport, explain_token};

/// A check's outcome. Only `Fail` makes the doctor exit 1: a warning is a risk to know of, not a
/// set-up that does not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// Not checked, because an earlier check failed or the feature is off.
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
            Self::Skip => "skip",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable identifier for machines (`apple_verdict`, `database`...).
    pub check: &'static str,
    /// What was checked, for people ("Apple's verdict on com.example.app").
    pub title: String,
    pub status: Status,
    /// What was found.
    pub message: String,
    /// What to do, when something is to be done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The checks, in the order they were made.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn push(
        &mut self,
        check: &'static str,
        title: impl Into<String>,
        status: Status,
        message: impl Into<String>,
        fix: Option<String>,
    ) {
        self.checks.push(Check {
            check,
            title: title.into(),
            status,
            message: message.into(),
            fix,
        });
    }

    fn ok(&mut self, check: &'static str, title: impl Into<String>, message: impl Into<String>) {
        self.push(check, title, Status::Ok, message, None);
    }

    fn warn(
        &mut self,
        check: &'static str,
        title: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(check, title, Status::Warn, message, Some(fix.into()));
    }

    fn fail(
        &mut self,
        check: &'static str,
        title: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(check, title, Status::Fail, message, Some(fix.into()));
    }

    fn skip(&mut self, check: &'static str, title: impl Into<String>, message: impl Into<String>) {
        self.push(check, title, Status::Skip, message, None);
    }

    /// Whether no check failed: the doctor's exit status.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// One line per check (what, ok or what is wrong), the fix indented under it, and a last
    /// line that sums up.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            out.push_str(&format!(
                "{:<5} {}: {}\n",
                check.status.label(),
                check.title,
                check.message
            ));
            if let Some(fix) = &check.fix {
                out.push_str(&format!("      -> {fix}\n"));
            }
        }
        let count = |s| self.checks.iter().filter(|c| c.status == s).count();
        let (failed, warned) = (count(Status::Fail), count(Status::Warn));
        out.push_str(&match (failed, warned) {
            (0, 0) => "All checks passed.\n".to_owned(),
            (0, w) => format!("All checks passed, with {w} warning(s).\n"),
            (f, w) => format!("{f} check(s) failed, {w} warning(s).\n"),
        });
        out
    }
}
