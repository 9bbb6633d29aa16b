"""Offline stand-in for ansible-test's downloaded get-pip.py.

ansible-test bootstraps pip in every virtualenv it makes by running a
get-pip.py that it downloads from the internet, unless a copy is cached at
~/.ansible/test/cache/get_pip_<version>.py. scripts/ansible-test puts this
file there. It takes get-pip.py's arguments (pip install arguments plus
--no-setuptools/--no-wheel), installs the pip bundled with Python through
ensurepip, then lets that pip install the requested packages (the pinned pip)
from the package index.
"""

import os
import subprocess
import sys

# Options that only get-pip.py understands; pip install would reject them.
GET_PIP_ONLY = {'--no-setuptools', '--no-wheel', '--no-pip'}


def main():
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]

    # In a subprocess: ensurepip clears PIP_* variables and sets
    # PIP_CONFIG_FILE=/dev/null in the process that runs it.
    subprocess.run([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'],
                   check=True, stdout=subprocess.DEVNULL)

    # A PIP_CONFIG_FILE pointing at /dev/null (leaked from an ensurepip run
    # further up) would hide the machine's pip configuration (index, mirrors).
    env = dict(os.environ)
    if env.get('PIP_CONFIG_FILE') == os.devnull:
        del env['PIP_CONFIG_FILE']

    if args:
        subprocess.run([sys.executable, '-m', 'pip', 'install'] + args, check=True, env=env)


if __name__ == '__main__':
    main()
