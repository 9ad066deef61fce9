//! `linux-patch/hauki_channel.h` compiles cleanly as C99 (and in gcc's default mode), and its
//! helpers work: a FIFO stands in for a channel (open by name, send, receive with a timeout,
//! the errno of a missing channel and of a bad name). Skipped when there is no `cc`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn header_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("linux-patch/").to_path_buf()
}

fn have_cc() -> bool {
    Command::new("cc").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn cc(args: &[&str]) {
    let out = Command::new("cc").args(args).output().expect("cc runs");
    assert!(
        out.status.success(),
        "cc {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const PROGRAM: &str = r#"
#include <string.h>
#include "hauki_channel.h"

int main(void)
{
	char buf[16];
	ssize_t n;
	int fd = hauki_channel_open("pipe", O_RDWR);

	if (fd < 0) {
		perror("open");
		return 1;
	}
	if (hauki_channel_recv(fd, buf, sizeof(buf), 0) != -1 || errno != EAGAIN)
		return 2;
	if (hauki_channel_recv(fd, buf, sizeof(buf), 20) != -1 || errno != EAGAIN)
		return 3;
	if (hauki_channel_send(fd, "ping", 4) != 4)
		return 4;
	n = hauki_channel_recv(fd, buf, sizeof(buf), -1);
	if (n != 4 || memcmp(buf, "ping", 4) != 0)
		return 5;
	if (hauki_channel_open("missing", O_RDONLY) != -1 || errno != ENOENT)
		return 6;
	if (hauki_channel_open("Bad/name", O_RDONLY) != -1 || errno != EINVAL)
		return 7;
	if (hauki_channel_open("", O_RDONLY) != -1 || errno != EINVAL)
		return 8;
	if (hauki_channel_open("abcdefghijklmnopqrstuvwxyz012345", O_RDONLY) != -1 || errno != EINVAL)
		return 9;
	close(fd);
	puts("ok");
	return 0;
}
"#;

#[test]
fn the_c_header_compiles_and_works() {
    if !have_cc() {
        eprintln!("no cc: linux-patch/hauki_channel.h not checked");
        return;
    }
    let dir = std::env::temp_dir().join(format!("haukictl-c-header-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("dev")).unwrap();
    let header = header_dir().join("hauki_channel.h");
    let include = header_dir();
    let include = include.to_str().unwrap();
    let strict = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=200809L"];
    // The header alone, as C99 and in gcc's default dialect.
    let mut args: Vec<&str> = strict.to_vec();
    args.extend(["-fsyntax-only", "-x", "c", header.to_str().unwrap()]);
    cc(&args);
    cc(&["-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-x", "c", header.to_str().unwrap()]);
    // A program over a FIFO in place of /dev/hauki/pipe.
    let src = dir.join("prog.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let exe = dir.join("prog");
    let dev = format!("-DHAUKI_CHANNEL_DIR=\"{}/dev/\"", dir.display());
    let mut args: Vec<&str> = strict.to_vec();
    args.extend(["-I", include, &dev, src.to_str().unwrap(), "-o", exe.to_str().unwrap()]);
    cc(&args);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("dev/pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let out = Command::new(&exe).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"ok\n");
    let _ = std::fs::remove_dir_all(&dir);
}
