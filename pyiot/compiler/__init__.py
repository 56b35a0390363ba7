"""The compiler: model -> machine tables -> transitions machines, driver code and graphs."""

from pyiot.compiler.program import Program, compile_file, load_program

__all__ = ["Program", "compile_file", "load_program"]
