//! The one error of the FFI surface, and the one place errors of the crates below become it.

use std::fmt;

use rewarder_core::Code;

/// What went wrong, told so an app knows what to do: fix its input (`Invalid`), retry or
/// check the device (`Io`), or report a defect (`Internal`). Messages carry no personal data.
///
/// Kotlin sees `RewarderException.Invalid`, `.Io` and `.Internal`; Swift sees `RewarderError`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Error)]
pub enum RewarderError {
    /// The arguments were refused: `code` is an API.md / CALCULUS.md error code
    /// (`schema`, `invalid_amount`, `duplicate_event`, `malformed_json`, `bad_request`, …).
    Invalid {
        /// The API error code.
        code: String,
        /// A human-readable explanation.
        detail: String,
    },
    /// The operating system refused something: a port, a socket, a thread, randomness.
    Io {
        /// A human-readable explanation.
        detail: String,
    },
    /// A defect of the library (for instance an invariant of CALCULUS.md §3 failed).
    Internal {
        /// A human-readable explanation.
        detail: String,
    },
}

impl fmt::Display for RewarderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RewarderError::Invalid { code, detail } => write!(f, "invalid ({code}): {detail}"),
            RewarderError::Io { detail } => write!(f, "i/o: {detail}"),
            RewarderError::Internal { detail } => write!(f, "internal: {detail}"),
        }
    }
}

impl std::error::Error for RewarderError {}

/// The one conversion from the core's error: its defects are `Internal`, everything else is
/// a refusal of the arguments with the core's API code.
impl From<rewarder_core::Error> for RewarderError {
    fn from(e: rewarder_core::Error) -> Self {
        let detail = e.message().to_owned();
        match e.code() {
            Code::InvariantViolation | Code::Internal => RewarderError::Internal { detail: e.to_string() },
            code => RewarderError::Invalid { code: code.as_str().to_owned(), detail },
        }
    }
}

/// The embedded node's start failures: a bad option is `Invalid` (`bad_request`), what the
/// system refused is `Io`.
#[cfg(feature = "embedded")]
impl From<rewarder_micronode::node::NodeError> for RewarderError {
    fn from(e: rewarder_micronode::node::NodeError) -> Self {
        use rewarder_micronode::node::NodeError;
        match e {
            NodeError::Config(detail) => {
                RewarderError::Invalid { code: Code::BadRequest.as_str().to_owned(), detail }
            }
            NodeError::Runtime(detail) | NodeError::AddrInUse(detail) => RewarderError::Io { detail },
            // A failure this library does not know yet: the system's side, whatever it says.
            other => RewarderError::Io { detail: other.to_string() },
        }
    }
}

#[cfg(test)]
mod tests {
    use rewarder_core::Error;

    use super::*;

    #[test]
    fn core_refusals_keep_their_code_and_defects_are_internal() {
        let e = RewarderError::from(Error::field(Code::InvalidAmount, "pool_minor", "not a decimal"));
        assert_eq!(
            e,
            RewarderError::Invalid { code: "invalid_amount".into(), detail: "not a decimal".into() }
        );
        let e = RewarderError::from(Error::new(Code::InvariantViolation, "sum differs"));
        assert!(matches!(e, RewarderError::Internal { .. }), "{e}");
    }
}
