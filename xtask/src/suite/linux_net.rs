//! Linux's network beside the real-time tasks, both ways: on each NIC model `--nic` offers, a host
//! client fetches a file Linux serves through a forwarded port (`--forward`), and Linux fetches a
//! file the host serves; both checksummed, under deterministic time, the latency task missing
//! nothing. And bulk, to a second machine: two QEMU NICs on `dgram` (UDP) links to another QEMU
//! running Linux bare, hundreds of MiB both ways.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::linux_guest::{sh, with_linux};
use super::{Ctx, Status, Test, hard_timeout};
use crate::console::ShellConsole;
use crate::qemu::{Boot, Net, NicModel, Qemu, QemuConfig};

pub(super) fn tests() -> Vec<Test> {
    tests![System: linux_network_both_ways, linux_network_bulk_to_a_second_machine]
}

/// Bytes each way per NIC.
const BLOB: usize = 1 << 20;

pub(crate) fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A free TCP port on the host's loopback (bound, then released for QEMU to take).
pub(super) fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free host port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// `BLOB` bytes of a xorshift sequence seeded by `seed`.
pub(crate) fn blob(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..BLOB / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}

/// Serves `body` once as an HTTP/1.0 response on `listener` (a thread); the request is not read
/// beyond its headers.
pub(crate) fn serve_once(listener: TcpListener, body: Vec<u8>) -> std::thread::JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().map_err(|e| format!("the host server accepted nothing: {e}"))?;
        s.set_read_timeout(Some(hard_timeout())).ok();
        let mut req = Vec::new();
        let mut b = [0u8; 512];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).map_err(|e| format!("reading the request: {e}"))?;
            if n == 0 {
                break;
            }
            req.extend_from_slice(&b[..n]);
        }
        let head = format!(
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).and_then(|()| s.write_all(&body)).map_err(|e| format!("serving: {e}"))
    })
}

/// GET `path` from 127.0.0.1:`port` (HTTP/1.0); the body.
pub(crate) fn fetch(port: u16, path: &str) -> Result<Vec<u8>, String> {
    let mut s =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connecting to the forwarded port: {e}"))?;
    s.set_read_timeout(Some(hard_timeout())).ok();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).map_err(|e| format!("reading the response: {e}"))?;
    let at = all.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no HTTP header in the response")?;
    let (head, body) = (String::from_utf8_lossy(&all[..at]).to_string(), all[at + 4..].to_vec());
    if !head.starts_with("HTTP/1.") || !head.contains(" 200") {
        return Err(format!("the server in Linux answered {head:?}"));
    }
    Ok(body)
}

/// The hash `sha256sum` printed for `file`.
pub(crate) fn guest_sha(out: &str, file: &str) -> Option<String> {
    out.lines().find(|l| l.trim_end().ends_with(file))?.split_whitespace().next().map(str::to_string)
}

/// Waits (up to 30 s of guest time) for eth0 to get QEMU user networking's 10.0.2.15 by DHCP, which
/// the initramfs's rcS runs in the background.
pub(crate) fn wait_for_dhcp(con: &mut ShellConsole) -> Result<(), String> {
    let ip = sh(
        con,
        "i=0; until ip -4 addr show eth0 | grep -q 10.0.2.15 || [ $i -ge 150 ]; do i=$((i+1)); sleep 0.2; done; \
         ip -4 addr show eth0 | grep inet",
    )?;
    if !ip.contains("10.0.2.15") {
        return Err(format!("eth0 got no address by DHCP: {ip:?}"));
    }
    Ok(())
}

/// One NIC: wait for DHCP, host ← Linux through the forwarded port, Linux ← host.
fn one_nic(ctx: &Ctx<'_>, elf: &Path, model: NicModel) -> Status {
    let host_port = match free_port() {
        Ok(p) => p,
        Err(e) => return Status::Fail(e),
    };
    let net = Net { model, forwards: vec![(host_port, 8080)] };
    let steps = |con: &mut ShellConsole, _c2: &Path| -> Result<(), String> {
        wait_for_dhcp(con)?;
        // Linux → host: Linux serves a file, the host fetches it through the forwarded port.
        let out = sh(
            con,
            &format!(
                "mkdir -p /tmp/www && head -c {BLOB} /dev/urandom > /tmp/www/blob && sha256sum /tmp/www/blob && \
                 httpd -p 8080 -h /tmp/www"
            ),
        )?;
        let want = guest_sha(&out, "/tmp/www/blob").ok_or_else(|| format!("no sha256sum line: {out:?}"))?;
        let got = fetch(host_port, "/blob")?;
        if got.len() != BLOB || hex(&Sha256::digest(&got)) != want {
            return Err(format!("the host fetched {} bytes that differ from Linux's file", got.len()));
        }
        // Host → Linux: the host serves a file, Linux fetches it from 10.0.2.2.
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let body = blob(u64::from(port));
        let want = hex(&Sha256::digest(&body));
        let server = serve_once(listener, body);
        let out = sh(con, &format!("wget -q -O /tmp/in http://10.0.2.2:{port}/blob && sha256sum /tmp/in"))?;
        server.join().map_err(|_| "the host server panicked".to_string())??;
        if guest_sha(&out, "/tmp/in").as_deref() != Some(want.as_str()) {
            return Err(format!("what Linux fetched from the host differs: {out:?}"));
        }
        // A report period more, so that the latency check covers the transfers.
        sh(con, "sleep 1")?;
        println!("    {}: {} KiB each way, checksums equal", model.name(), BLOB >> 10);
        Ok(())
    };
    with_linux(&ctx.dir_with(model.name()), elf, &[], &["-nic", &net.arg()], &steps)
}

/// Linux's network both ways on virtio-net (MSI-X), e1000e (MSI-X) and e1000 (an INTx line), under
/// deterministic time: a host client fetches 1 MiB Linux serves through a forwarded port, Linux
/// fetches 1 MiB the host serves, both compared by SHA-256; the latency task misses nothing.
fn linux_network_both_ways(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    for model in [NicModel::Virtio, NicModel::E1000e, NicModel::E1000] {
        match one_nic(ctx, elf, model) {
            Status::Pass => {}
            Status::Fail(e) => return Status::Fail(format!("{}: {e}", model.name())),
            other => return other,
        }
    }
    Status::Pass
}

/// MiB each way on each link of the bulk test (4 transfers: 256 MiB through Linux's NICs).
const BULK_MIB: usize = 64;
/// The blob the bulk transfers repeat (from `/dev/urandom`, kept in tmpfs).
const BULK_BLOB_MIB: usize = 16;

/// A free UDP port on the host's loopback (bound, then released for QEMU to take).
fn free_udp_port() -> Result<u16, String> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("no free UDP port: {e}"))?;
    s.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// One end of a point-to-point Ethernet link through UDP datagrams (QEMU's `dgram` netdev): the NIC
/// `model` with MAC `mac`, sending to `remote` and receiving on `local`.
fn dgram_nic(id: &str, model: &str, mac: &str, local: u16, remote: u16) -> [String; 4] {
    [
        "-netdev".into(),
        format!(
            "dgram,id={id},local.type=inet,local.host=127.0.0.1,local.port={local},\
             remote.type=inet,remote.host=127.0.0.1,remote.port={remote}"
        ),
        "-device".into(),
        format!("{model},netdev={id},mac={mac}"),
    ]
}

/// Shell: waits for the initramfs's DHCP clients to give up (these links have no DHCP server),
/// then gives the NIC with each MAC its address; then a CGI script that streams `BULK_MIB` MiB (the
/// blob over and over) and a web server for it; prints the blob's MD5.
fn bulk_setup(addrs: &[(&str, &str)]) -> String {
    let reps = BULK_MIB / BULK_BLOB_MIB;
    let mut cmd =
        String::from("i=0; while pidof udhcpc >/dev/null && [ $i -lt 150 ]; do i=$((i+1)); sleep 0.2; done; ");
    for (mac, addr) in addrs {
        cmd += &format!(
            "n=$(grep -l {mac} /sys/class/net/*/address | cut -d/ -f5) && ip addr add {addr}/24 dev $n && ip link set $n up && "
        );
    }
    cmd += &format!(
        "mkdir -p /tmp/www/cgi-bin && head -c {} /dev/urandom > /tmp/blob && \
         printf '#!/bin/sh\\necho Content-Type: application/octet-stream\\necho\\nfor i in $(seq {reps}); do cat /tmp/blob; done\\n' \
         > /tmp/www/cgi-bin/bulk && chmod +x /tmp/www/cgi-bin/bulk && httpd -p 8080 -h /tmp/www && \
         md5sum /tmp/blob",
        BULK_BLOB_MIB << 20
    );
    cmd
}

/// Shell: fetches the bulk stream from `ip` and prints the MD5 of each blob-sized piece of it, then
/// the count of bytes beyond them (hashing the pieces keeps the sender from hashing it all).
fn bulk_fetch(ip: &str) -> String {
    format!(
        "wget -q -O - http://{ip}:8080/cgi-bin/bulk | (for i in $(seq {}); do \
         dd bs=1M count={BULK_BLOB_MIB} iflag=fullblock 2>/dev/null | md5sum; done; wc -c)",
        BULK_MIB / BULK_BLOB_MIB
    )
}

/// Whether `out` of [`bulk_fetch`] is the whole stream of the blob whose MD5 is `blob`: every piece
/// equal to it, and nothing more.
fn bulk_intact(out: &str, blob: &str) -> bool {
    let pieces: Vec<&str> = out.lines().filter_map(|l| l.strip_suffix("  -")).collect();
    let rest = out.lines().rev().find(|l| !l.trim().is_empty()).map(str::trim);
    pieces.len() == BULK_MIB / BULK_BLOB_MIB && pieces.iter().all(|p| *p == blob) && rest == Some("0")
}

/// Linux under the co-kernel and a second machine (another QEMU, the same kernel bare, plain
/// TCG) joined by two point-to-point Ethernet links on QEMU's `dgram` backend: Linux's e1000 (an
/// INTx line through the co-kernel's irqchip) on one, its virtio-net (MSI-X) on the other. On each
/// link both machines fetch `BULK_MIB` MiB from each other's web server at the same time, and
/// every stream is the sender's (each 16 MiB piece's MD5 equal to the sender's blob's, nothing
/// more); the latency task misses nothing throughout.
fn linux_network_bulk_to_a_second_machine(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let ports: Result<Vec<u16>, String> = (0..4).map(|_| free_udp_port()).collect();
    let [h1, p1, h2, p2] = match ports.as_deref() {
        Ok(&[a, b, c, d]) => [a, b, c, d],
        Ok(_) => return Status::Fail("four UDP ports".into()),
        Err(e) => return Status::Fail(e.clone()),
    };
    let (hauki_mac, peer_mac) =
        (["52:54:00:00:71:01", "52:54:00:00:72:01"], ["52:54:00:00:71:02", "52:54:00:00:72:02"]);
    // The second machine, booted first: it is ready sooner than Linux under icount.
    let (vmlinux, initrd) = match crate::linux::build_all(ctx.ws) {
        Ok(x) => x,
        Err(e) => return Status::Fail(format!("the Linux guest does not build: {e}")),
    };
    let peer_dir = ctx.dir_with("peer");
    let (c1, c2) = Qemu::paths(&peer_dir);
    let mut cfg = QemuConfig::test(
        Boot::Linux { vmlinux, initrd, cmdline: crate::linux::DEFAULT_CMDLINE.into() },
        "max",
        &c1,
        &c2,
    );
    cfg.extra = dgram_nic("l1", "virtio-net-pci", peer_mac[0], p1, h1).into();
    cfg.extra.extend(dgram_nic("l2", "virtio-net-pci", peer_mac[1], p2, h2));
    let mut peer = match ShellConsole::spawn(&peer_dir, &cfg) {
        Ok(c) => c,
        Err(e) => return Status::Fail(format!("the second machine: {e}")),
    };
    let mut qemu: Vec<String> = dgram_nic("l1", "e1000", hauki_mac[0], h1, p1).into();
    qemu.extend(dgram_nic("l2", "virtio-net-pci", hauki_mac[1], h2, p2));
    let qemu: Vec<&str> = qemu.iter().map(String::as_str).collect();
    let peer_cell = std::cell::RefCell::new(&mut peer);
    let steps = |con: &mut ShellConsole, _c2: &Path| -> Result<(), String> {
        let mut peer = peer_cell.borrow_mut();
        let bound = hard_timeout();
        peer.expect(super::linux_guest::UP, bound).map_err(|e| format!("the second machine: {e}"))?;
        peer.expect("# ", bound)?;
        super::linux_guest::quiet_console(&mut peer, bound)?;
        let peer_sh = |peer: &mut ShellConsole, cmd: &str, bound| -> Result<String, String> {
            let (out, st) = peer.run(cmd, bound)?;
            if st != 0 {
                return Err(format!("the second machine: `{cmd}` exited with {st}: {out}"));
            }
            Ok(out)
        };
        let peer_sent =
            peer_sh(&mut peer, &bulk_setup(&[(peer_mac[0], "192.168.71.2"), (peer_mac[1], "192.168.72.2")]), bound)?;
        let peer_sent =
            guest_sha(&peer_sent, "/tmp/blob").ok_or_else(|| format!("the second machine's blob: {peer_sent:?}"))?;
        let sent = sh(con, &bulk_setup(&[(hauki_mac[0], "192.168.71.1"), (hauki_mac[1], "192.168.72.1")]))?;
        let sent = guest_sha(&sent, "/tmp/blob").ok_or_else(|| format!("Linux's blob: {sent:?}"))?;
        // A transfer is bounded (a hang is a failure) but generously: the machines are shared.
        let long = bound * 5;
        for (link, nic) in [("71", "e1000 (INTx)"), ("72", "virtio-net")] {
            // Both directions at once: Linux's fetch in the background, the second machine's in
            // the foreground, then Linux's result.
            sh(con, &format!("({} > /tmp/in{link}) >/dev/null 2>&1 & true", bulk_fetch(&format!("192.168.{link}.2"))))?;
            let got_peer = peer_sh(&mut peer, &bulk_fetch(&format!("192.168.{link}.1")), long)?;
            let (got, st) = con.run(&format!("wait; cat /tmp/in{link}"), long)?;
            if st != 0 {
                return Err(format!("{nic}: waiting for Linux's download: {got}"));
            }
            if !bulk_intact(&got_peer, &sent) {
                return Err(format!("{nic}: the second machine received other bytes than Linux sent: {got_peer:?}"));
            }
            if !bulk_intact(&got, &peer_sent) {
                return Err(format!("{nic}: Linux received other bytes than the second machine sent: {got:?}"));
            }
            println!("    {nic} on a dgram link: {BULK_MIB} MiB each way at once, checksums equal");
        }
        sh(con, "sleep 1")?;
        Ok(())
    };
    with_linux(&ctx.dir(), elf, &[], &qemu, &steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bulk_setup_addresses_each_nic_by_its_mac_and_streams_the_blob() {
        let cmd = bulk_setup(&[("52:54:00:00:71:01", "192.168.71.1"), ("52:54:00:00:72:01", "192.168.72.1")]);
        assert!(cmd.contains("grep -l 52:54:00:00:71:01 /sys/class/net/*/address"), "{cmd}");
        assert!(cmd.contains("ip addr add 192.168.72.1/24 dev $n"), "{cmd}");
        assert!(cmd.contains("head -c 16777216 /dev/urandom > /tmp/blob"), "{cmd}");
        // The script's newlines are printf's to make, its loop the script's to run.
        assert!(cmd.contains(r"printf '#!/bin/sh\necho Content-Type"), "{cmd}");
        assert!(cmd.ends_with("md5sum /tmp/blob"), "{cmd}");
        assert!(bulk_fetch("10.1.1.1").contains("for i in $(seq 4); do dd bs=1M count=16 iflag=fullblock"));
        let good = "abc  -\nabc  -\nabc  -\nabc  -\n0\n";
        assert!(bulk_intact(good, "abc"));
        assert!(!bulk_intact("abc  -\nabc  -\nabd  -\nabc  -\n0\n", "abc"), "a piece differs");
        assert!(!bulk_intact("abc  -\nabc  -\nabc  -\n0\n", "abc"), "a piece is missing");
        assert!(!bulk_intact("abc  -\nabc  -\nabc  -\nabc  -\n12\n", "abc"), "bytes beyond");
    }

    #[test]
    fn sha256sum_lines_are_read_by_file() {
        let out = "abc123  /tmp/www/blob\nother  /tmp/in\n";
        assert_eq!(guest_sha(out, "/tmp/www/blob").as_deref(), Some("abc123"));
        assert_eq!(guest_sha(out, "/tmp/in").as_deref(), Some("other"));
        assert_eq!(guest_sha(out, "/nope"), None);
        assert_eq!(blob(7).len(), BLOB);
        assert_ne!(blob(7), blob(9));
    }
}
