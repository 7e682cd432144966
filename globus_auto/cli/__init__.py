"""The command line: the click group and one module per command.

Commands read options, call the engine and print what it returns; only this
folder imports click, prompts or prints.
"""
