import os
import unittest

import app


class AppTest(unittest.TestCase):
    def test_greeting_names_app_and_release(self):
        os.environ["LXDCTL_RELEASE"] = "v9"
        self.assertEqual(app.greeting(), "python-hello release v9\n")

    def test_tcp_check_unset(self):
        self.assertEqual(app.tcp_check("", 5432), {"set": False, "reachable": False})

    def test_tcp_check_parses_url(self):
        result = app.tcp_check("postgresql://u:p@127.0.0.1:1/db", 5432, timeout=0.5)
        self.assertEqual((result["set"], result["host"], result["port"]), (True, "127.0.0.1", 1))


if __name__ == "__main__":
    unittest.main()
