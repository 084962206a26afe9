//! A faithful, controllable fake of Apple's Sign in with Apple service (filled by a later issue).
