"""Built-in mini-apps; each subpackage plugs in through the same contract as a third-party one."""
