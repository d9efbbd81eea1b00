"""RootfsExportStrategy: the development loop as a labgrid GraphStrategy.

    unknown -> off -> updated -> serving -> booted -> shell

off powers the board down; updated refreshes the export from the build (image and feeds); serving starts the
server for the board's transport; booted powers the board on with the export's command line; shell logs in.
After that, `strategy.refresh()` (or the driver's update()) applies the build's new packages while the board runs:
no reboot, no remount.
"""
import attr

from labgrid.factory import target_factory
from labgrid.strategy.graphstrategy import GraphStrategy


@target_factory.reg_driver
@attr.s(eq=False)
class RootfsExportStrategy(GraphStrategy):
    """Binds power, console, the RootfsExportDriver and a shell. A power driver that takes the kernel command line
    itself (QEMUDriver's boot_args) gets the export's, after its own boot_args; other boards read it from their
    boot loader (see `rootfs-export cmdline` / `bootspec`)."""
    bindings = {
        "power": "PowerProtocol",
        "console": "ConsoleProtocol",
        "export": "RootfsExportDriver",
        "shell": "ShellDriver",
    }

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self._own_boot_args = getattr(self.power, "boot_args", None)

    def state_unknown(self):
        pass

    @GraphStrategy.depends("unknown")
    def state_off(self):
        self.target.activate(self.power)
        self.power.off()

    @GraphStrategy.depends("off")
    def state_updated(self):
        self.target.activate(self.export)
        self.export.update()

    @GraphStrategy.depends("updated")
    def state_serving(self):
        self.export.serve()

    @GraphStrategy.depends("serving")
    def state_booted(self):
        if hasattr(self.power, "boot_args"):
            self._hand_cmdline_to_power(self.export.cmdline())
        self.target.activate(self.console)
        self.power.on()

    @GraphStrategy.depends("booted")
    def state_shell(self):
        self.target.activate(self.shell)

    def _hand_cmdline_to_power(self, cmdline):
        # QEMUDriver builds its command when activated: give it the line, then activate it again
        self.target.deactivate(self.power)
        self.power.boot_args = " ".join(a for a in (self._own_boot_args, cmdline) if a)
        self.target.activate(self.power)

    def refresh(self):
        """Applies what the build produced since (new and rebuilt packages, a new image) to the running board's
        export. Returns update's output."""
        return self.export.update()
