//! Reading a password on the terminal without echo.
//!
//! Echo goes off *before* the prompt is written (and type-ahead is discarded,
//! as getpass(3) does), so nothing typed after the prompt appears is ever
//! shown: not a quick typist's, not a pasted or scripted answer's. A prompt
//! written first and echo turned off after it (rpassword's order) shows
//! whatever arrives in between.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};

use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg, Termios};

/// Puts the terminal's settings back, also when reading fails.
struct Restore<'a> {
    tty: &'a File,
    saved: Termios,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.tty, SetArg::TCSANOW, &self.saved);
    }
}

/// Asks for a password on the controlling terminal (/dev/tty); the line
/// typed, without its line end. End of input is an error (UnexpectedEof).
pub fn read_password(prompt: &str) -> io::Result<String> {
    let tty = File::options().read(true).write(true).open("/dev/tty")?;
    read_password_on(&tty, prompt)
}

/// [`read_password`] on the terminal `tty`.
pub fn read_password_on(tty: &File, prompt: &str) -> io::Result<String> {
    let saved = tcgetattr(tty).map_err(io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    // The Enter that ends the password still moves to the next line.
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(tty, SetArg::TCSAFLUSH, &quiet).map_err(io::Error::from)?;
    let _restore = Restore { tty, saved };
    let mut out = tty;
    out.write_all(prompt.as_bytes())?;
    out.flush()?;
    let mut line = String::new();
    if BufReader::new(tty).read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of input at the password prompt"));
    }
    while line.ends_with(['\n', '\r']) {
        line.pop();
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::pty::openpty;
    use std::io::Read;
    use std::time::{Duration, Instant};

    /// What the terminal shows (the pty's master side) until `want` appears.
    fn read_until(master: &mut File, shown: &mut Vec<u8>, want: &[u8]) {
        let end = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 256];
        while !shown.windows(want.len()).any(|w| w == want) {
            assert!(Instant::now() < end, "no {want:?} on the terminal; it showed {:?}", String::from_utf8_lossy(shown));
            let n = master.read(&mut buf).unwrap();
            shown.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn an_answer_typed_the_moment_the_prompt_shows_is_not_echoed() {
        let pty = openpty(None, None).unwrap();
        let (mut master, slave) = (File::from(pty.master), File::from(pty.slave));
        let reader = std::thread::spawn(move || {
            let first = read_password_on(&slave, "Password: ");
            let echo_after = tcgetattr(&slave).unwrap().local_flags.contains(LocalFlags::ECHO);
            (first, echo_after)
        });
        let mut shown = Vec::new();
        read_until(&mut master, &mut shown, b"Password: ");
        // At once, as a paste or a script would.
        master.write_all(b"s3cret-pw\r").unwrap();
        let (got, echo_after) = reader.join().unwrap();
        assert_eq!(got.unwrap(), "s3cret-pw");
        assert!(echo_after, "the terminal's echo was not turned back on");
        // The ECHONL newline ends what the terminal shows.
        read_until(&mut master, &mut shown, b"\n");
        let text = String::from_utf8_lossy(&shown);
        assert!(!text.contains("s3cret"), "the password was echoed: {text:?}");
    }

    #[test]
    fn end_of_input_is_an_error_not_an_empty_password() {
        let pty = openpty(None, None).unwrap();
        let (mut master, slave) = (File::from(pty.master), File::from(pty.slave));
        let reader = std::thread::spawn(move || read_password_on(&slave, "Password: "));
        let mut shown = Vec::new();
        read_until(&mut master, &mut shown, b"Password: ");
        master.write_all(&[4]).unwrap(); // Ctrl-D at the start of a line
        assert_eq!(reader.join().unwrap().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
