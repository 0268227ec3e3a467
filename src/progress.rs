//! Progress of long loops (encoding documents, training epochs): an `indicatif` bar when stderr
//! is a terminal; otherwise plain lines, every `PLAIN_EVERY` items and at the end, so that logs
//! (CI, nohup, files) get readable lines instead of carriage-return updates piled on one line.
//! In the browser (wasm32) only the plain lines exist; the page reports its own progress.

#[cfg(not(target_arch = "wasm32"))]
use indicatif::{ProgressBar, ProgressStyle};

/// No terminal bars in the browser: `bar` is always None there.
#[cfg(target_arch = "wasm32")]
struct ProgressBar;
#[cfg(target_arch = "wasm32")]
impl ProgressBar {
    fn set_position(&self, _: u64) {}
    fn set_message(&self, _: String) {}
    fn finish_with_message(&self, _: String) {}
}

/// Plain mode writes a line after this many items (and always at the end).
const PLAIN_EVERY: u64 = 50;

pub struct Progress {
    bar: Option<ProgressBar>,
    prefix: String,
    len: u64,
    /// False: report nothing (tests, library callers).
    shown: bool,
}

impl Progress {
    /// A progress report over `len` items named by `prefix` ("stage 1 epoch 3/30"); `shown`
    /// false reports nothing.
    pub fn new(len: u64, prefix: String, shown: bool) -> Progress {
        #[cfg(not(target_arch = "wasm32"))]
        let bar = (shown && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            let b = ProgressBar::new(len);
            let style = ProgressStyle::with_template("{prefix} [{bar:24}] {pos:>4}/{len} {msg}").expect("valid template").progress_chars("#>.");
            b.set_style(style);
            b.set_prefix(prefix.clone());
            b
        });
        #[cfg(target_arch = "wasm32")]
        let bar = None;
        Progress { bar, prefix, len, shown }
    }

    /// `done` items finished; `msg` carries the rates and losses.
    pub fn update(&self, done: u64, msg: &str) {
        match &self.bar {
            Some(b) => {
                b.set_position(done);
                b.set_message(msg.to_string());
            }
            None if self.shown && done % PLAIN_EVERY == 0 && done < self.len => eprintln!("{} {done}/{} {msg}", self.prefix, self.len),
            None => {}
        }
    }

    /// The last line, kept on screen.
    pub fn finish(&self, msg: &str) {
        match &self.bar {
            Some(b) => {
                b.set_position(self.len);
                b.finish_with_message(msg.to_string());
            }
            None if self.shown => eprintln!("{} {}/{} {msg}", self.prefix, self.len, self.len),
            None => {}
        }
    }
}
