# rootfs-export.bbclass — keep a netboot export of your images current.
#
# Add to conf/local.conf:
#     INHERIT += "rootfs-export"
#     ROOTFS_EXPORT_IMAGES = "core-image-minimal"
#
# What it does:
#  * the images in ROOTFS_EXPORT_IMAGES (and only those) keep their package database
#    (IMAGE_FEATURES package-management, with opkg/dpkg/rpm but without dnf, python3 or apt), which
#    `rootfs-export update` reads and writes when it applies packages from the feeds;
#  * when a build finishes, tells every running `rootfs-export watch` of this build directory
#    (unix sockets ${ROOTFS_EXPORT_SOCKET_DIR}/*.sock), all at once, with one line
#    "build-done <targets>\n"; it never fails or slows the build beyond ROOTFS_EXPORT_NOTIFY_TIMEOUT;
#  * with ROOTFS_EXPORT_AUTO = "1", those images get a task do_rootfs_export, after do_image_complete
#    (so the image is in DEPLOY_DIR_IMAGE) and outside pseudo, that runs `rootfs-export update`
#    and, with ROOTFS_EXPORT_TRANSPORT, `rootfs-export bootspec`. A failure is a warning.
#
# Variables:
#  ROOTFS_EXPORT_IMAGES      image recipes that are exported (default: none)
#  ROOTFS_EXPORT_BIN         the tool: a name looked up in the task's PATH (tmp/hosttools gets a link to a
#                            rootfs-export on the PATH bitbake started with), or an absolute path
#  ROOTFS_EXPORT_DIR         export directory (default: ${TOPDIR}/export/${IMAGE_BASENAME}-${MACHINE})
#  ROOTFS_EXPORT_AUTO        "1": update the export after every build of the image (default "0")
#  ROOTFS_EXPORT_TRANSPORT   nfs | tcp | usbg | virtio: after the update, (re)write Boot Loader Spec entries
#                            for this transport (empty: leave boot entries alone)
#  ROOTFS_EXPORT_SERVER      ADDRESS[:PORT] the board dials (nfs, tcp), written into the kernel command line
#  ROOTFS_EXPORT_BOOTSPEC_ARGS  further `rootfs-export bootspec` arguments, e.g. "--console ttyAMA0,115200"
#  ROOTFS_EXPORT_FULL_PACKAGE_MANAGER  "1": exported images get all of package-management (dnf, apt too)
#  ROOTFS_EXPORT_SOCKET_DIR  where watch sockets live (default ${TOPDIR}/.rootfs-export, as `watch` uses)
#  ROOTFS_EXPORT_NOTIFY_TIMEOUT  seconds the whole notification may take (default 1.0)

ROOTFS_EXPORT_IMAGES ??= ""
ROOTFS_EXPORT_BIN ??= "rootfs-export"
ROOTFS_EXPORT_DIR ??= ""
ROOTFS_EXPORT_AUTO ??= "0"
ROOTFS_EXPORT_TRANSPORT ??= ""
ROOTFS_EXPORT_SERVER ??= ""
ROOTFS_EXPORT_BOOTSPEC_ARGS ??= ""
ROOTFS_EXPORT_FULL_PACKAGE_MANAGER ??= "0"
ROOTFS_EXPORT_SOCKET_DIR ??= "${TOPDIR}/.rootfs-export"
ROOTFS_EXPORT_NOTIFY_TIMEOUT ??= "1.0"

# Tasks see only sysroots, scripts and tmp/hosttools on their PATH; hosttools links the host programs named
# here (NONFATAL: a build without the tool installed still works).
HOSTTOOLS_NONFATAL += "rootfs-export"

def rootfs_export_notify(d, message):
    """Send message to every watch socket at once; return how many answered "ok". Never raises.
    A watch that accepts and stays silent costs the budget once, never once per socket."""
    import glob, os, selectors, socket, time
    sockdir = d.getVar("ROOTFS_EXPORT_SOCKET_DIR") or ""
    try:
        budget = float(d.getVar("ROOTFS_EXPORT_NOTIFY_TIMEOUT") or "1.0")
    except ValueError:
        budget = 1.0
    deadline = time.monotonic() + budget
    sel = selectors.DefaultSelector()
    for path in sorted(glob.glob(os.path.join(sockdir, "*.sock"))):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            # a unix connect completes or fails at once (ECONNREFUSED: a socket left by a killed watch)
            s.connect(path)
            s.sendall((message + "\n").encode("utf-8"))
            sel.register(s, selectors.EVENT_READ)
        except OSError as e:
            bb.debug(1, "rootfs-export: no watch at %s (%s)" % (path, e))
            s.close()
    answered = 0
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for key, _ in sel.select(left):
            try:
                reply = key.fileobj.recv(64)
            except OSError:
                reply = b""
            answered += 1 if reply.startswith(b"ok") else 0
            sel.unregister(key.fileobj)
            key.fileobj.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
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

def rootfs_export_is_exported(d):
    """Listed in ROOTFS_EXPORT_IMAGES and deploys an image (has image.bbclass's do_image_complete)."""
    return d.getVar("PN") in (d.getVar("ROOTFS_EXPORT_IMAGES") or "").split() and bool(d.getVarFlag("do_image_complete", "task"))

def rootfs_export_keep_package_state(d):
    """The package database stays in the image (without package-management do_rootfs deletes it). The
    feature would also install the high-level package manager (dnf and python3 with rpm, apt with deb);
    only the low-level tool stays, which run-postinsts on the board calls when the database exists."""
    if bb.utils.contains("IMAGE_FEATURES", "package-management", True, False, d):
        return  # the image asked for it itself: its choice stands
    d.appendVar("IMAGE_FEATURES", " package-management")
    if d.getVar("ROOTFS_EXPORT_FULL_PACKAGE_MANAGER") != "1":
        tools = [p for p in (d.getVar("ROOTFS_PKGMANAGE") or "").split() if p not in ("dnf", "apt")]
        d.setVar("FEATURE_PACKAGES_package-management", " ".join(tools))

def rootfs_export_setup(d):
    """Anonymous python of each recipe: nothing changes for recipes that are not exported images, so their
    signatures stay as they were."""
    if not rootfs_export_is_exported(d):
        return
    if bb.data.inherits_class("image", d):
        rootfs_export_keep_package_state(d)
    if d.getVar("ROOTFS_EXPORT_AUTO") == "1":
        bb.build.addtask("do_rootfs_export", "do_build", "do_image_complete", d)

python () {
    rootfs_export_setup(d)
}

def rootfs_export_tool(d):
    """The tool's absolute path, or None."""
    import os, shutil
    tool = d.getVar("ROOTFS_EXPORT_BIN") or "rootfs-export"
    if os.path.isabs(tool):
        return tool if os.access(tool, os.X_OK) else None
    return shutil.which(tool, path=d.getVar("PATH"))

def rootfs_export_commands(d, tool):
    """update, then (with ROOTFS_EXPORT_TRANSPORT) bootspec, as argument lists."""
    import os, shlex
    image, machine, topdir = d.getVar("IMAGE_BASENAME"), d.getVar("MACHINE"), d.getVar("TOPDIR")
    export = d.getVar("ROOTFS_EXPORT_DIR") or os.path.join(topdir, "export", "%s-%s" % (image, machine))
    cmds = [[tool, "update", image, "--build-dir", topdir, "--machine", machine, "--export", export]]
    transport = d.getVar("ROOTFS_EXPORT_TRANSPORT")
    if transport:
        cmd = [tool, "bootspec", export, "--transport", transport]
        server, _, port = (d.getVar("ROOTFS_EXPORT_SERVER") or "").partition(":")
        cmd += ["--server", server] if server else []
        cmd += ["--port", port] if port else []
        cmds.append(cmd + shlex.split(d.getVar("ROOTFS_EXPORT_BOOTSPEC_ARGS") or ""))
    return cmds

def rootfs_export_error(output):
    """The tool's own message: its error lines, else its last line."""
    lines = [l.strip() for l in output.splitlines() if l.strip()]
    errors = [l for l in lines if "error:" in l]
    return "; ".join(errors) if errors else (lines[-1] if lines else "no output")

def rootfs_export_run(d):
    """do_rootfs_export: run the commands in order; the first failure is a warning, never a build error."""
    import os, subprocess
    tool = rootfs_export_tool(d)
    if not tool:
        bb.warn("rootfs-export: '%s' not found for the task: install it (./rootfs-export install puts it in "
                "~/.local/bin) and start bitbake with it on PATH, or set ROOTFS_EXPORT_BIN to its absolute path"
                % d.getVar("ROOTFS_EXPORT_BIN"))
        return False
    # PSEUDO_UNLOAD: should pseudo be loaded after all, it leaves this process tree (rootfs-export keeps its
    # own pseudo-compatible database and must not run under the image's pseudo)
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(PSEUDO_UNLOAD="1", PATH=d.getVar("PATH") or env.get("PATH", "/usr/bin:/bin"))
    for cmd in rootfs_export_commands(d, tool):
        bb.note("rootfs-export: %s" % " ".join(cmd))
        try:
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=3600)
        except (OSError, subprocess.SubprocessError) as ex:
            bb.warn("rootfs-export %s failed: %s" % (cmd[1], ex))
            return False
        out = p.stdout.decode(errors="replace")
        if out.strip():
            bb.note(out.rstrip())
        if p.returncode != 0:
            bb.warn("rootfs-export %s failed (exit %d): %s" % (cmd[1], p.returncode, rootfs_export_error(out)))
            return False
    return True

python do_rootfs_export () {
    rootfs_export_run(d)
}
# runs on every build of the image: `update` says "image up to date" quickly, and an export deleted or
# changed by hand is brought back
do_rootfs_export[nostamp] = "1"
do_rootfs_export[doc] = "Updates the rootfs-export export of the image (ROOTFS_EXPORT_AUTO)"
