//! Protocol words: the fixed values a field may take (Apple's `grant_type`, `response_mode`,
//! the siwa server's error codes), each an enum spelled once, here in `siwa-core`, so that no
//! crate compares them as strings or parses another crate's spelling back.

/// A protocol word that is not one of the values its field allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a known {field}")]
pub struct UnknownWord {
    /// The field, e.g. `grant_type`.
    pub field: &'static str,
    /// What was sent.
    pub value: String,
}

/// Declares a protocol word: an enum whose variants are spelled as the protocol spells them,
/// with `as_str`, `ALL`, `Display`, `FromStr`, `TryFrom<String>` and serde. Exported, so that
/// the server's own words (a webhook's event type, a stored reason) are declared the same way.
#[macro_export]
macro_rules! protocol_word {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($(#[$vmeta:meta])* $variant:ident => $word:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant),+
        }

        impl $name {
            /// Every word, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The word as the protocol spells it.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $word),+ }
            }
        }

        impl From<$name> for &'static str {
            fn from(word: $name) -> &'static str {
                word.as_str()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// For stored values (a database column, say).
        impl TryFrom<String> for $name {
            type Error = $crate::word::UnknownWord;
            fn try_from(value: String) -> Result<Self, $crate::word::UnknownWord> {
                value.parse()
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::word::UnknownWord;
            fn from_str(value: &str) -> Result<Self, $crate::word::UnknownWord> {
                match value {
                    $($word => Ok(Self::$variant),)+
                    other => Err($crate::word::UnknownWord { field: $field, value: other.to_owned() }),
                }
            }
        }
    };
}

pub(crate) use crate::protocol_word;

/// A space-separated list of words (`scope=name email`, `response_type=code id_token`).
pub fn join<W: Copy + Into<&'static str>>(words: &[W]) -> String {
    words
        .iter()
        .map(|w| (*w).into())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a space-separated list of words, refusing the first unknown one.
pub fn split<W: std::str::FromStr<Err = UnknownWord>>(list: &str) -> Result<Vec<W>, UnknownWord> {
    list.split_whitespace().map(str::parse).collect()
}
