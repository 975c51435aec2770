//! Writing to standard output and error. A reader that stopped (`| head`)
//! closes the pipe: what is left to say is dropped and the command ends as
//! it would have, instead of panicking the way `println!` does. The same
//! for a closed standard error.

use std::fmt::Arguments;
use std::io::Write;

pub fn stdout(args: Arguments<'_>, newline: bool) {
    write(std::io::stdout().lock(), args, newline);
}

pub fn stderr(args: Arguments<'_>, newline: bool) {
    write(std::io::stderr().lock(), args, newline);
}

fn write(mut to: impl Write, args: Arguments<'_>, newline: bool) {
    // A write that fails (a closed pipe, a full disk behind a redirect) has
    // nobody to be reported to: the stream itself is what failed.
    let _ = to.write_fmt(args);
    if newline {
        let _ = to.write_all(b"\n");
    }
    let _ = to.flush();
}
