SUMMARY = "rootfs-export test: deploys a rootfs tarball to DEPLOY_DIR_IMAGE the way image.bbclass does"
DESCRIPTION = "do_image writes IMAGE_BASENAME-MACHINE.rootfs-<time>.tar.gz and its .rootfs.tar.gz link into \
IMGDEPLOYDIR; do_image_complete is an sstate task that deploys IMGDEPLOYDIR to DEPLOY_DIR_IMAGE, as in \
image.bbclass. No compiler, no native recipe, no network: build it with 'bitbake -c image_complete' (or \
-c rootfs_export)."
LICENSE = "MIT"
INHIBIT_DEFAULT_DEPS = "1"
inherit nopackages

IMAGE_BASENAME = "${PN}"
IMGDEPLOYDIR = "${WORKDIR}/deploy-${PN}-image-complete"
KERNEL_RELEASE = "6.6.23-rfe"

python do_image () {
    import io, os, tarfile, time
    deploy = d.getVar("IMGDEPLOYDIR")
    stamp = time.strftime("%Y%m%d%H%M%S")
    base = "%s-%s" % (d.getVar("IMAGE_BASENAME"), d.getVar("MACHINE"))
    name = "%s.rootfs-%s.tar.gz" % (base, stamp)
    release = d.getVar("KERNEL_RELEASE")
    files = {"etc/issue": ("built %s\n" % stamp, 0o644, 0, 0), "etc/hostname": ("rfe-test\n", 0o644, 0, 0),
             "etc/os-release": ('ID=rfe\nNAME="rootfs-export test"\nVERSION_ID=1\n', 0o644, 0, 0),
             "etc/shadow": ("root::19000::::::\n", 0o640, 0, 42), "usr/bin/su": ("#!/bin/sh\n", 0o4755, 0, 0),
             "boot/bzImage-" + release: ("not a kernel\n", 0o644, 0, 0)}
    with tarfile.open(os.path.join(deploy, name), "w:gz", format=tarfile.PAX_FORMAT) as t:
        for path in [".", "etc", "usr", "usr/bin", "boot", "dev"]:
            i = tarfile.TarInfo("./" + path if path != "." else "."); i.type = tarfile.DIRTYPE; i.mode = 0o755
            t.addfile(i)
        for path, (text, mode, uid, gid) in sorted(files.items()):
            data = text.encode()
            i = tarfile.TarInfo("./" + path); i.size = len(data); i.mode = mode; i.uid = uid; i.gid = gid
            t.addfile(i, io.BytesIO(data))
        i = tarfile.TarInfo("./dev/console"); i.type = tarfile.CHRTYPE; i.devmajor = 5; i.devminor = 1; i.mode = 0o600
        t.addfile(i)
    os.symlink(name, os.path.join(deploy, base + ".rootfs.tar.gz"))
    bb.note("rfe-test-image: wrote %s" % name)
}
do_image[cleandirs] = "${IMGDEPLOYDIR}"
# a new tarball on every build, like an image whose packages changed
do_image[nostamp] = "1"
addtask do_image

# as image.bbclass: IMGDEPLOYDIR reaches DEPLOY_DIR_IMAGE through sstate, after the task's own postfuncs
SSTATETASKS += "do_image_complete"
SSTATE_SKIP_CREATION:task-image-complete = "1"
python do_image_complete () {
    bb.note("rfe-test-image: image complete")
}
do_image_complete[dirs] = "${TOPDIR}"
do_image_complete[sstate-inputdirs] = "${IMGDEPLOYDIR}"
do_image_complete[sstate-outputdirs] = "${DEPLOY_DIR_IMAGE}"
do_image_complete[stamp-extra-info] = "${MACHINE_ARCH}"
addtask do_image_complete after do_image before do_build
python do_image_complete_setscene () {
    sstate_setscene(d)
}
addtask do_image_complete_setscene
