"""The command line: Typer commands (each module loaded only when its command runs) and the one
Rich console. Presentation only: every decision is made in the rooms below.
"""
