# Init container of the operator when externalDatabase is given as parts: writes the admin URL, with the
# password from its mounted Secret file percent-encoded, to a file only the operator's pod can read.
# The password never passes through an environment variable or a command line.
import os
import urllib.parse

with open(os.environ["PASSWORD_FILE"], encoding="utf-8") as password_file:
    password = password_file.read().rstrip("\r\n")
host = os.environ["DB_HOST"]
if ":" in host and not host.startswith("["):
    host = f"[{host}]"  # an IPv6 address
url = "postgresql://{}:{}@{}:{}/{}?sslmode={}".format(
    urllib.parse.quote(os.environ["DB_USER"], safe=""), urllib.parse.quote(password, safe=""), host,
    int(os.environ["DB_PORT"]), urllib.parse.quote(os.environ["DB_NAME"], safe=""),
    urllib.parse.quote(os.environ["DB_SSLMODE"], safe="-"))
os.umask(0o077)
with open(os.environ["URL_FILE"], "w", encoding="utf-8") as out:
    out.write(url + "\n")
print(f"admin database URL for {os.environ['DB_USER']}@{host}:{os.environ['DB_PORT']} written")
