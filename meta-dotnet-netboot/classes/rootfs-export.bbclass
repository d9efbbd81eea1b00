# rootfs-export.bbclass — keep a netboot export of your images current.
#
# Add to conf/local.conf:   INHERIT += "rootfs-export"
#
# What it does:
#  * keeps the package manager data in images (IMAGE_FEATURES package-management), which
#    `rootfs-export update` needs to upgrade packages in the export from the feeds;
#  * when a build finishes, tells every running `rootfs-export watch` of this build directory
#    (unix sockets ${ROOTFS_EXPORT_SOCKET_DIR}/*.sock) with one line "build-done <targets>\n";
#    it never fails or slows the build: no watch running means nothing to do;
#  * with ROOTFS_EXPORT_AUTO = "1", runs `rootfs-export update ${IMAGE_BASENAME}` after each image
#    build (outside pseudo: rootfs-export keeps its own pseudo-compatible database).
#
# Variables:
#  ROOTFS_EXPORT_BIN         the tool (default: rootfs-export from PATH; see the layer README for a
#                            self-contained install that needs no network during the build)
#  ROOTFS_EXPORT_DIR         export directory (default: ${TOPDIR}/export/${IMAGE_BASENAME}-${MACHINE})
#  ROOTFS_EXPORT_AUTO        "1": update the export after every image build (default "0")
#  ROOTFS_EXPORT_TRANSPORT   nfs | tcp | usbg | virtio: with ROOTFS_EXPORT_AUTO, also (re)write Boot Loader
#                            Spec entries for this transport (empty: leave boot entries alone)
#  ROOTFS_EXPORT_SERVER      server address written into the kernel command line (nfs, tcp)
#  ROOTFS_EXPORT_SOCKET_DIR  where watch sockets live (default ${TOPDIR}/.rootfs-export, as `watch` uses)
#  ROOTFS_EXPORT_NOTIFY_TIMEOUT  seconds the whole notification may take (default 1.0)

ROOTFS_EXPORT_BIN ??= "rootfs-export"
ROOTFS_EXPORT_DIR ??= ""
ROOTFS_EXPORT_AUTO ??= "0"
ROOTFS_EXPORT_TRANSPORT ??= ""
ROOTFS_EXPORT_SERVER ??= ""
ROOTFS_EXPORT_SOCKET_DIR ??= "${TOPDIR}/.rootfs-export"
ROOTFS_EXPORT_NOTIFY_TIMEOUT ??= "1.0"

IMAGE_FEATURES:append = " package-management"

def rootfs_export_notify(d, message):
    """Send message to every watch socket; return how many answered "ok". Never raises."""
    import glob, os, socket, time
    sockdir = d.getVar("ROOTFS_EXPORT_SOCKET_DIR") or ""
    try:
        budget = float(d.getVar("ROOTFS_EXPORT_NOTIFY_TIMEOUT") or "1.0")
    except ValueError:
        budget = 1.0
    deadline = time.monotonic() + budget
    answered = 0
    for path in sorted(glob.glob(os.path.join(sockdir, "*.sock"))):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(left)
            s.connect(path)
            s.sendall((message + "\n").encode("utf-8"))
            reply = s.recv(64)
            if reply.startswith(b"ok"):
                answered += 1
        except OSError as e:
            bb.debug(1, "rootfs-export: no watch at %s (%s)" % (path, e))
        finally:
            s.close()
    return answered

python rootfs_export_build_completed () {
    try:
        targets = " ".join(e.getPkgs() or []) if hasattr(e, "getPkgs") else ""
        answered = rootfs_export_notify(e.data, ("build-done " + targets).strip())
        if answered:
            bb.note("rootfs-export: notified %d watch(es)" % answered)
    except Exception as ex:
        bb.debug(1, "rootfs-export: notification skipped: %s" % ex)
}
addhandler rootfs_export_build_completed
rootfs_export_build_completed[eventmask] = "bb.event.BuildCompleted"

def rootfs_export_update_command(d):
    """The update command for this image, as an argument list."""
    cmd = [d.getVar("ROOTFS_EXPORT_BIN"), "update", d.getVar("IMAGE_BASENAME"),
           "--build-dir", d.getVar("TOPDIR"), "--machine", d.getVar("MACHINE")]
    if d.getVar("ROOTFS_EXPORT_DIR"):
        cmd += ["--export", d.getVar("ROOTFS_EXPORT_DIR")]
    return cmd

python rootfs_export_auto_update () {
    if d.getVar("ROOTFS_EXPORT_AUTO") != "1":
        return
    import subprocess
    cmd = rootfs_export_update_command(d)
    # rootfs-export keeps its own pseudo-compatible database: never run it under the image's pseudo
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSEUDO_") and k != "LD_PRELOAD"}
    bb.note("rootfs-export: %s" % " ".join(cmd))
    try:
        out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1800).stdout.decode(errors="replace")
        bb.note(out)
    except Exception as ex:
        bb.warn("rootfs-export update failed: %s" % ex)
}
# do_image_complete is not a fakeroot task; the image tarball is in DEPLOY_DIR_IMAGE once it has run
do_image_complete[postfuncs] += "rootfs_export_auto_update"
