//! Linux's PCI interrupt lines through the co-kernel's paravirtual irqchip: ACPI in APIC mode
//! routes INTx to GSIs 16–23, Linux binds each to a vector of its own and the co-kernel masks it
//! from arrival to Linux's EOI. Two devices share a line and both work; a device storming a line
//! Linux owns is throttled and reported while the real-time side misses nothing.
//!
//! On q35 a device in slot `s` (below 0x18) raises INTA on PIRQ E + (s & 3), which the ICH9 wires
//! to GSI 20 + (s & 3): slots 0x6, 0xa and 0xe all share GSI 22.

use std::path::Path;

use super::linux_guest::{sh, with_linux};
use super::linux_net::{blob, guest_sha, hex, serve_once, wait_for_dhcp};
use super::{Ctx, Status, Test};
use crate::console::ShellConsole;
use crate::telemetry::Records;

pub(super) fn tests() -> Vec<Test> {
    tests![System: pci_lines_shared_by_two_devices, pci_line_storm_throttled, pci_line_storm_unthrottled_is_survived]
}

/// The edu device's BAR 0 (in slot 0xe), with memory decoding turned on: no driver enabled it.
fn edu_bar0(con: &mut ShellConsole) -> Result<u64, String> {
    let base = sh(
        con,
        "d=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device | head -1); d=${d%/device}; \
         printf '\\006\\001' | dd of=$d/config bs=1 seek=4 conv=notrunc 2>/dev/null; head -1 $d/resource | cut -d' ' -f1",
    )?;
    u64::from_str_radix(base.trim().trim_start_matches("0x"), 16)
        .map_err(|e| format!("the edu's BAR 0 is {base:?}: {e}"))
}

/// The edu's interrupt raise and acknowledge registers, as `devmem` commands.
fn edu_raise(base: u64) -> String {
    format!("devmem {:#x} 32 1", base + 0x60)
}
fn edu_ack(base: u64) -> String {
    format!("devmem {:#x} 32 1", base + 0x64)
}

/// The GSI the test devices share.
const SHARED_GSI: u64 = 22;

/// Linux's interrupt count and action names for IRQ `irq`, from `/proc/interrupts`.
fn proc_interrupts(text: &str, irq: u64) -> Option<(u64, String)> {
    let line = text.lines().find(|l| l.trim_start().starts_with(&format!("{irq}:")))?;
    let mut f = line.split_whitespace().skip(1);
    let count = f.next()?.parse().ok()?;
    let rest: Vec<&str> = f.collect();
    Some((count, rest.join(" ")))
}

/// The co-kernel's count of interrupts on line `gsi` in its last `guest` record.
fn cokernel_line_irqs(c2: &Path, gsi: u64) -> u64 {
    let recs = Records::parse(&std::fs::read_to_string(c2).unwrap_or_default());
    recs.events("guest").last().and_then(|g| g["line_irqs"].get(gsi as usize)?.as_u64()).unwrap_or(0)
}

/// An e1000 NIC (INTx only) in slot 6 and a virtio-blk disk forced onto INTx (`vectors=0`) in
/// slot 0xa share GSI 22: Linux lists both on IRQ 22 (chip `hauki`), a 1 MiB download through
/// the NIC and 4 MiB read from the disk, run at the same time, arrive intact, both drivers' and
/// the co-kernel's counts of the line grow, and the latency task misses nothing.
fn pci_lines_shared_by_two_devices(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let (dir, files) = match ctx.files_dir() {
        Ok(f) => (ctx.dir(), f),
        Err(e) => return Status::Fail(e),
    };
    let disk = files.join("shared.img");
    let data = blob(0x5eed);
    // The disk holds 4 copies of the blob, raw (no filesystem: the test reads the device).
    let image: Vec<u8> = (0..4).flat_map(|_| data.iter().copied()).collect();
    if let Err(e) = std::fs::write(&disk, &image) {
        return Status::Fail(format!("{}: {e}", disk.display()));
    }
    let want_disk = hex(&sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&image)));
    let drive = format!("file={},format=raw,if=none,id=d0", disk.display());
    let qemu = [
        "-netdev",
        "user,id=n0",
        "-device",
        "e1000,netdev=n0,addr=0x6",
        "-drive",
        &drive,
        "-device",
        "virtio-blk-pci,drive=d0,vectors=0,addr=0xa",
    ];
    let steps = |con: &mut ShellConsole, c2: &Path| -> Result<(), String> {
        wait_for_dhcp(con).map_err(|e| format!("e1000 on INTx: {e}"))?;
        let before = sh(con, "cat /proc/interrupts")?;
        let (n0, who) = proc_interrupts(&before, SHARED_GSI)
            .ok_or_else(|| format!("IRQ {SHARED_GSI} is not in /proc/interrupts:\n{before}"))?;
        if !(who.contains("hauki") && who.contains("eth0") && who.contains("virtio")) {
            return Err(format!("IRQ {SHARED_GSI} should be the hauki chip's, shared by eth0 and virtio: {who:?}"));
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let want_net = hex(&sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&data)));
        let server = serve_once(listener, data.clone());
        // Both devices at once: the disk read in the background while the download runs.
        let out = sh(
            con,
            &format!(
                "(dd if=/dev/vda bs=65536 2>/dev/null | sha256sum > /tmp/disk.sum) & \
                 wget -q -O /tmp/net http://10.0.2.2:{port}/blob && sha256sum /tmp/net; wait; cat /tmp/disk.sum"
            ),
        )?;
        server.join().map_err(|_| "the host server panicked".to_string())??;
        if guest_sha(&out, "/tmp/net").as_deref() != Some(want_net.as_str()) {
            return Err(format!("the download through the shared line differs: {out:?}"));
        }
        if guest_sha(&out, "-").as_deref() != Some(want_disk.as_str()) {
            return Err(format!("the disk read through the shared line differs: {out:?}"));
        }
        let after = sh(con, "cat /proc/interrupts")?;
        let (n1, _) = proc_interrupts(&after, SHARED_GSI).ok_or("IRQ 22 vanished")?;
        sh(con, "sleep 1")?;
        let cok = cokernel_line_irqs(c2, SHARED_GSI);
        if n1 <= n0 || cok < n1 {
            return Err(format!(
                "IRQ {SHARED_GSI}: Linux counted {n0} then {n1}, the co-kernel {cok} (it must see every one Linux got)"
            ));
        }
        println!(
            "    GSI {SHARED_GSI} shared by e1000 and virtio-blk: {} interrupts for Linux, {cok} through the co-kernel; 1 MiB + 4 MiB intact",
            n1 - n0
        );
        Ok(())
    };
    with_linux(&dir, elf, &[], &qemu, &steps)
}

/// QEMU's edu device in slot 0xe shares GSI 22 with an e1000 in slot 6, the co-kernel in xAPIC
/// mode (`hauki.apic=xapic`): there Linux has no self-IPI and replays logged events with `int`,
/// one interrupt frame deeper per arrival, which the throttle bounds. No driver owns the edu;
/// Linux pokes it through /dev/mem to raise its interrupt and leaves it asserted for half a
/// second of guest time: the e1000's handler finds nothing to do each time, and the line storms.
/// The co-kernel detects the storm, throttles the line, reports it (a `storm` record, and the
/// status page), keeps the interrupts Linux sees far below an unthrottled storm's, and the latency
/// task misses nothing. Once the edu is acknowledged the line is quiet again and the e1000 still
/// works (Linux did not have to disable its IRQ).
fn pci_line_storm_throttled(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let qemu = ["-netdev", "user,id=n0", "-device", "e1000,netdev=n0,addr=0x6", "-device", "edu,addr=0xe"];
    let steps = |con: &mut ShellConsole, c2: &Path| -> Result<(), String> {
        wait_for_dhcp(con)?;
        let base = edu_bar0(con)?;
        let before = sh(con, "cat /proc/interrupts")?;
        let (n0, _) = proc_interrupts(&before, SHARED_GSI).ok_or("IRQ 22 is not in /proc/interrupts")?;
        // Raise, hold for half a second of guest time, acknowledge.
        sh(con, &format!("{}; sleep 0.5; {}", edu_raise(base), edu_ack(base)))?;
        let after = sh(con, "cat /proc/interrupts")?;
        let (n1, _) = proc_interrupts(&after, SHARED_GSI).ok_or("IRQ 22 vanished")?;
        sh(con, "sleep 1")?;
        let recs = Records::parse(&std::fs::read_to_string(c2).unwrap_or_default());
        let storms: Vec<_> = recs.events("storm").filter(|s| s["line"].as_u64() == Some(SHARED_GSI)).collect();
        let total = storms.last().and_then(|s| s["storms"].as_u64()).unwrap_or(0);
        if total == 0 {
            return Err(format!(
                "no storm was reported on line {SHARED_GSI} ({} interrupts reached Linux in 0.5 s)",
                n1 - n0
            ));
        }
        // Unthrottled, the line re-fires as soon as Linux's handler ends, every few microseconds
        // (and Linux's interrupt frames nest until its stack overflows). Throttled, at most the
        // co-kernel's limit (8 in 100 µs) before it is masked for 10, 20, 40 … ms: a few dozen
        // in 0.5 s.
        let bound = 200;
        if n1 - n0 > bound {
            return Err(format!("{} interrupts reached Linux during the storm, more than {bound}", n1 - n0));
        }
        let status = sh(con, "cat /proc/hauki/status")?;
        if !status.contains("storms") {
            return Err(format!("the status page does not show the storm:\n{status}"));
        }
        // The storm is over: the line is quiet, and it still serves the NIC.
        let (a, _) =
            proc_interrupts(&sh(con, "sleep 0.5; cat /proc/interrupts")?, SHARED_GSI).ok_or("IRQ 22 vanished")?;
        let (b, _) =
            proc_interrupts(&sh(con, "sleep 0.5; cat /proc/interrupts")?, SHARED_GSI).ok_or("IRQ 22 vanished")?;
        if b > a + 50 {
            return Err(format!("line {SHARED_GSI} still storms after the edu was acknowledged: {a} then {b}"));
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let data = blob(u64::from(port));
        let want = hex(&sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&data)));
        let server = serve_once(listener, data);
        let out = sh(con, &format!("wget -q -O /tmp/after http://10.0.2.2:{port}/blob && sha256sum /tmp/after"))?;
        server.join().map_err(|_| "the host server panicked".to_string())??;
        if guest_sha(&out, "/tmp/after").as_deref() != Some(want.as_str()) {
            return Err(format!("the e1000 on the line that stormed no longer works: {out:?}"));
        }
        println!(
            "    edu storming GSI {SHARED_GSI} for 0.5 s (xAPIC): {total} storm(s) throttled, {} interrupts reached Linux",
            n1 - n0
        );
        Ok(())
    };
    with_linux(&ctx.dir(), elf, &[(hauki_abi::cmdline::APIC, &"xapic")], &qemu, &steps)
}

/// The same held line with the co-kernel's throttle off (`hauki.line_storm_limit=0`): nothing
/// stops the storm but Linux itself, as on bare hardware. The line fires again at every EOI, and
/// each interrupt must run at the depth of the code it interrupted: Linux takes 100 000 of them
/// without its stack overflowing (each used to nest one frame deeper, and a few dozen overflowed
/// it), its spurious-interrupt detector says "nobody cared" and disables IRQ 22, the co-kernel
/// reports no storm, and the latency task misses nothing.
fn pci_line_storm_unthrottled_is_survived(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    let qemu = ["-netdev", "user,id=n0", "-device", "e1000,netdev=n0,addr=0x6", "-device", "edu,addr=0xe"];
    let steps = |con: &mut ShellConsole, c2: &Path| -> Result<(), String> {
        wait_for_dhcp(con)?;
        let base = edu_bar0(con)?;
        let (n0, _) = proc_interrupts(&sh(con, "cat /proc/interrupts")?, SHARED_GSI)
            .ok_or("IRQ 22 is not in /proc/interrupts")?;
        // Linux gets no further than its interrupt handlers until it disables the line.
        sh(con, &format!("{}; sleep 0.2; {}", edu_raise(base), edu_ack(base)))?;
        let (n1, _) = proc_interrupts(&sh(con, "cat /proc/interrupts")?, SHARED_GSI).ok_or("IRQ 22 vanished")?;
        let dmesg = sh(con, "dmesg | grep -i -e 'nobody cared' -e 'disabling irq'")?;
        if !dmesg.contains(&format!("irq {SHARED_GSI}: nobody cared"))
            || !dmesg.contains(&format!("Disabling IRQ #{SHARED_GSI}"))
        {
            return Err(format!("Linux did not disable the storming IRQ {SHARED_GSI}: {dmesg:?}"));
        }
        // Linux's detector counts 100 000 interrupts, 99 900 of them unhandled.
        if n1 - n0 < 99_900 {
            return Err(format!("only {} interrupts reached Linux before it disabled the line", n1 - n0));
        }
        sh(con, "sleep 1")?;
        let recs = Records::parse(&std::fs::read_to_string(c2).unwrap_or_default());
        if let Some(s) = recs.events("storm").next() {
            return Err(format!("the throttle is off, yet a storm was reported: {s}"));
        }
        let cok = cokernel_line_irqs(c2, SHARED_GSI);
        if cok < n1 {
            return Err(format!("the co-kernel counted {cok} interrupts on line {SHARED_GSI}, Linux {n1}"));
        }
        println!(
            "    edu storming GSI {SHARED_GSI} unthrottled: {} interrupts reached Linux before it disabled the line; no overflow, no miss",
            n1 - n0
        );
        Ok(())
    };
    with_linux(&ctx.dir(), elf, &[(hauki_abi::cmdline::LINE_STORM_LIMIT, &0)], &qemu, &steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_interrupts_lines_are_read_by_irq() {
        let text = "           CPU0\n  4:        120   hauki   4-fasteoi   ttyS0\n 22:       3456   hauki  22-fasteoi   eth0, virtio0\n";
        assert_eq!(proc_interrupts(text, 22), Some((3456, "hauki 22-fasteoi eth0, virtio0".into())));
        assert_eq!(proc_interrupts(text, 4).map(|x| x.0), Some(120));
        assert_eq!(proc_interrupts(text, 2), None);
    }
}
