"""edgeseg's one entry point: edgeseg {export,info,run,demo,eval,train,dataset,calibrate,build,bench,deploy,doctor}.

One module per verb or family of verbs (export, calibrate, build, run, bench, deploy), each built from the shared
argument groups in groups.py; parser.py puts them together and entry.py runs them. Argument parsing and dispatch
only: each verb's work lives in its package. Every user mistake is an EdgesegError: one line, exit status 1.
"""

from edgeseg.arguments import parse_model_args
from edgeseg.cli.entry import main, os_error_line
from edgeseg.cli.parser import build_parser

__all__ = ["build_parser", "main", "os_error_line", "parse_model_args"]
