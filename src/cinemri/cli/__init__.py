"""The `cinemri` command. Each subcommand is a few lines that call a typed API function.

Library code raises ValueError/OSError with a one-line message; here it becomes
``cinemri: error: <message>`` on stderr and exit status 2, never a traceback. A run that
stopped on its own (:class:`cinemri.errors.RunStopped`, e.g. training diverged) is the same
one line with exit status 1.
"""

from __future__ import annotations

import argparse
import sys

from cinemri import __version__
from cinemri.cli import analyze_command, data_commands, demo_command, recon_commands, seg_commands, study_command
from cinemri.errors import RunStopped

# Each module contributes subcommands through register(subparsers).
_COMMAND_MODULES = (data_commands, demo_command, recon_commands, seg_commands, analyze_command, study_command)


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples in epilogs as written and shows each real default once.

    No "(default: ...)" is added to a required option, to one whose default is None or False
    (its help says what happens when it is not given), or to help that already names its
    default.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if action.required or "(default" in text or any(default is v for v in (None, False, argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cinemri",
        description="Cardiac cine MRI: undersampled k-space -> cine -> RV/MYO/LV -> ejection fraction.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"cinemri {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.register(subparsers, _Formatter)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        args.run(args)
    except (ValueError, OSError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"cinemri: error: {message}", file=sys.stderr)
        return 2
    except RunStopped as error:  # e.g. training diverged: one line naming the last good checkpoint
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"cinemri: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cinemri: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
