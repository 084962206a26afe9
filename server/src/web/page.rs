//! The page at `/`: the Sign in with Apple button as Apple's guidelines draw it (black, the
//! Apple logo, "Sign in with Apple"), then the signed-in user with "Sign out" and "Delete
//! account". Plain HTML and one stylesheet, no script: it runs under a Content-Security-Policy
//! that allows nothing else.

use maud::{DOCTYPE, Markup, html};

use super::banner::Banner;

/// The policy the page is served with: its own stylesheet, forms to itself, no script, no
/// framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Whose page it is: the app people sign in to.
pub struct Brand<'a> {
    pub name: &'a str,
    /// On the page's own origin (`SIWA_APP_ICON_URL`).
    pub icon_url: Option<&'a str>,
}

/// What the page shows.
pub enum View<'a> {
    SignedOut {
        /// Why the web flow cannot run, when it cannot.
        unavailable: Option<&'static str>,
    },
    SignedIn {
        user: &'a crate::api::UserView,
        csrf: &'a str,
    },
}

pub fn render(brand: &Brand<'_>, view: &View<'_>, banner: Option<&Banner>) -> String {
    let body = html! {
        header class="brand" {
            @if let Some(icon) = brand.icon_url {
                img class="icon" src=(icon) alt="" width="24" height="24";
            } @else {
                span class="dot" {}
            }
            (brand.name)
        }
        @if let Some(banner) = banner {
            div class={ "banner " (if banner.is_error { "error" } else { "notice" }) } role="status" {
                (banner.text)
                @if let Some(code) = banner.code { " " span class="code" { "(" (code.as_str()) ")" } }
            }
        }
        @match view {
            View::SignedOut { unavailable } => {
                h1 { "Welcome" }
                p class="lead" { "Sign in to " (brand.name) " to continue. Your Apple Account keeps your account private: you can hide your email, and only the name you choose to share is passed on." }
                @if let Some(missing) = unavailable {
                    p class="banner error" { "Web sign-in is not set up on this server: " (missing) " missing." }
                } @else {
                    // A real link: it navigates, and is announced and activated as one.
                    a class="apple-button" href="/v1/web/sign-in" {
                        (apple_logo())
                        span { "Sign in with Apple" }
                    }
                }
            }
            View::SignedIn { user, csrf } => {
                h1 { "You are signed in" }
                dl class="profile" {
                    dt { "Name" }
                    dd id="user-name" { (display_name(user)) }
                    dt { "Email" }
                    dd id="user-email" {
                        @match user.email.as_deref() {
                            Some(email) => (breakable_email(email)),
                            None => "Not shared",
                        }
                        @if user.is_private_email { span class="tag" { "Hide My Email" } }
                    }
                }
                form method="post" action="/v1/web/sign-out" {
                    input type="hidden" name="csrf" value=(csrf);
                    button class="secondary" type="submit" { "Sign out" }
                }
                details class="danger" {
                    summary { "Delete account" }
                    p { "This deletes your account and everything it holds, and stops using your Apple Account with this site. It cannot be undone." }
                    form method="post" action="/v1/web/delete-account" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="confirm" value="delete";
                        button class="destructive" type="submit" { "Delete my account" }
                    }
                }
            }
        }
        footer { (brand.name) " · Sign in with Apple" }
    };
    document(brand, body, None)
}

/// The page's HTML around `body`, with `script` (a path on this origin) when there is one.
fn document(brand: &Brand<'_>, body: Markup, script: Option<&str>) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { "Sign in to " (brand.name) }
                link rel="icon" href=(brand.icon_url.unwrap_or("/favicon.ico"));
                link rel="stylesheet" href="/assets/siwa.css";
                @if let Some(script) = script { script src=(script) defer {} }
            }
            body { main class="card" { (body) } }
        }
    }
    .into_string()
}

/// The policy of a popup's last page: the page's, and its one script, from this origin.
pub const POPUP_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Where the popup's script is served.
pub const POPUP_SCRIPT_PATH: &str = "/assets/siwa-popup.js";

/// A web app's popup sign-in, as its last page tells the opener.
pub struct PopupOutcome<'a> {
    /// The web app's page (`return_to`): its origin alone is told, and it is the link to
    /// follow when the window cannot close itself (an in-app browser that opened a tab).
    pub return_to: &'a str,
    pub origin: &'a str,
    /// `None` when signed in; otherwise the error code, or Apple's.
    pub error: Option<&'a str>,
}

/// The popup's last page: it tells the opener the outcome (never a token) and closes.
pub fn render_popup(brand: &Brand<'_>, outcome: &PopupOutcome<'_>) -> String {
    let signed_in = outcome.error.is_none();
    let body = html! {
        header class="brand" { span class="dot" {} (brand.name) }
        div id="siwa-outcome" hidden
            data-origin=(outcome.origin)
            data-outcome=(if signed_in { "signed-in" } else { "failed" })
            data-error=[outcome.error] {}
        @if signed_in {
            h1 { "You are signed in" }
        } @else {
            h1 { "The sign-in did not complete" }
            p class="banner error" role="status" {
                span class="code" { "(" (outcome.error.unwrap_or_default()) ")" }
            }
        }
        p class="lead" { "This window closes by itself." }
        a class="secondary" href=(outcome.return_to) { "Continue to " (brand.name) }
    };
    document(brand, body, Some(POPUP_SCRIPT_PATH))
}

/// The popup's script, served at [`POPUP_SCRIPT_PATH`]: it posts the outcome to the opener on
/// the web app's origin alone (a page of another origin that opened the popup gets nothing),
/// then closes the window. Where the opener was cut (a `Cross-Origin-Opener-Policy`, an in-app
/// browser), the window closes all the same and the app asks `GET /v1/web/session`.
pub const POPUP_SCRIPT: &str = r#"(function () {
  var data = document.getElementById('siwa-outcome').dataset;
  var message = { type: 'siwa:sign-in', outcome: data.outcome };
  if (data.error) message.error = data.error;
  try { if (window.opener) window.opener.postMessage(message, data.origin); } catch (e) {}
  window.close();
})();
"#;

/// An email address that wraps only after its `@` and its dots, never inside a word.
fn breakable_email(email: &str) -> Markup {
    html! {
        @for (i, part) in email.split_inclusive(['@', '.']).enumerate() {
            @if i > 0 { wbr; }
            (part)
        }
    }
}

fn display_name(user: &crate::api::UserView) -> String {
    let parts: Vec<&str> = [user.given_name.as_deref(), user.family_name.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if parts.is_empty() {
        "Not shared".into()
    } else {
        parts.join(" ")
    }
}

/// The Apple logo as an inline SVG (never a font glyph, which renders only on Apple systems).
fn apple_logo() -> Markup {
    html! {
        svg class="logo" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" aria-hidden="true" focusable="false" {
            path fill="currentColor" d=(APPLE_LOGO_PATH) {}
        }
    }
}

const APPLE_LOGO_PATH: &str = "M12.152 6.896c-.948 0-2.415-1.078-3.96-1.04-2.04.027-3.91 1.183-4.961 3.014-2.117 3.675-.546 9.103 1.519 12.09 1.013 1.454 2.208 3.09 3.792 3.039 1.52-.065 2.09-.987 3.935-.987 1.831 0 2.35.987 3.96.948 1.637-.026 2.676-1.48 3.676-2.948 1.156-1.688 1.636-3.325 1.662-3.415-.039-.013-3.182-1.221-3.22-4.857-.026-3.04 2.48-4.494 2.597-4.559-1.429-2.09-3.623-2.324-4.39-2.376-2-.156-3.675 1.09-4.61 1.09zM15.53 3.83c.843-1.012 1.4-2.427 1.245-3.83-1.207.052-2.662.805-3.532 1.818-.78.896-1.454 2.338-1.273 3.714 1.338.104 2.715-.688 3.559-1.701";

/// The page's stylesheet, served at `/assets/siwa.css`.
pub const STYLESHEET: &str = r#"
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;padding:24px 16px;
  background:linear-gradient(180deg,#f5f5f7 0%,#e8e8ed 100%);color:#1d1d1f;
  font:16px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.card{width:100%;max-width:420px;background:#fff;border-radius:18px;padding:32px 28px;
  box-shadow:0 1px 2px rgba(0,0,0,.06),0 12px 40px rgba(0,0,0,.10)}
.brand{display:flex;align-items:center;gap:8px;font-weight:600;letter-spacing:.02em;color:#6e6e73;margin-bottom:20px}
.brand .icon{border-radius:6px}
.dot{width:10px;height:10px;border-radius:50%;background:#1d1d1f;display:inline-block}
h1{font-size:26px;line-height:1.2;margin:0 0 8px}
.lead{color:#515154;margin:0 0 24px}
.apple-button{display:flex;align-items:center;justify-content:center;gap:6px;width:100%;min-height:48px;
  padding:0 16px;border-radius:10px;background:#000;color:#fff;text-decoration:none;
  font-size:19px;font-weight:500;letter-spacing:-.01em}
.apple-button:hover{background:#1d1d1f}
.apple-button:focus-visible,button:focus-visible,summary:focus-visible{outline:3px solid #0071e3;outline-offset:2px}
.apple-button .logo{width:20px;height:20px;margin-top:-3px}
.profile{display:grid;grid-template-columns:max-content 1fr;gap:8px 16px;margin:20px 0 24px;padding:16px;
  background:#f5f5f7;border-radius:12px}
.profile dt{color:#6e6e73}
.profile dd{margin:0;font-weight:500;overflow-wrap:break-word;min-width:0}
.tag{display:inline-block;margin-left:8px;padding:1px 8px;border-radius:999px;background:#e8f0fe;color:#1a56c4;
  font-size:12px;font-weight:600;vertical-align:middle}
button{font:inherit;cursor:pointer}
.secondary{width:100%;min-height:44px;border:1px solid #d2d2d7;border-radius:10px;background:#fff;color:#1d1d1f;font-weight:500}
.secondary:hover{background:#f5f5f7}
a.secondary{display:flex;align-items:center;justify-content:center;text-decoration:none}
.danger{margin-top:16px;border-top:1px solid #e8e8ed;padding-top:12px}
.danger summary{color:#c9190b;cursor:pointer;font-weight:500;padding:6px 0}
.danger p{color:#515154;font-size:14px}
.destructive{width:100%;min-height:44px;border:0;border-radius:10px;background:#c9190b;color:#fff;font-weight:600}
.banner{border-radius:10px;padding:10px 14px;margin:0 0 20px;font-size:15px}
.banner.error{background:#fdecea;color:#8a1c12}
.banner.notice{background:#e9f6ec;color:#1e5b2c}
.code{color:inherit;font-size:13px}
footer{margin-top:28px;color:#6e6e73;font-size:13px;text-align:center}
@media (max-width:480px){.card{padding:24px 20px;border-radius:16px}h1{font-size:23px}}
"#;
