"""Apache Kafka's jars, fetched once from Maven Central into a cache, or an install's.

scv is proven on Apache Kafka, and its tests start real KRaft nodes. No Docker and no
download script: a small Maven project asks Maven Central for
``org.apache.kafka:kafka_2.13`` (pinned, :data:`KAFKA_VERSION`) with its dependencies, plus
the logging backend the server jar leaves to its distribution (log4j2 core and its SLF4J 2
binding). The jars land in ``$XDG_CACHE_HOME/scv/kafka-<version>/libs`` (``~/.cache`` by
default), outside the repository, and a marker file says the set is complete, so a fetch cut
short is redone. ``SCV_KAFKA_HOME`` names an existing install instead (its ``libs/``, as in
the Apache tarball); nothing is fetched then.

Java 17 or newer runs the broker; Maven fetches it. Either missing stops with one line that
says what to install.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

#: The Apache Kafka release scv is tested on (``SCV_KAFKA_VERSION`` picks another 4.x).
KAFKA_VERSION = "4.3.1"
LOG4J_VERSION = "2.25.3"
SLF4J_VERSION = "2.0.17"

_COMPLETE = ".complete"


class KafkaSetupError(RuntimeError):
    """What stops Apache Kafka from being fetched or started, in one line."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scv"


def java_binary() -> str:
    """The ``java`` to run the broker with (``$JAVA_HOME/bin/java`` first), checked to be
    Java 17 or newer (Kafka 4 needs it)."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise KafkaSetupError(
            "Apache Kafka needs Java 17 or newer: install a JDK (Debian: apt-get install "
            "openjdk-17-jre-headless) or set JAVA_HOME"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    found = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if found is None or int(found.group(1)) < 17:
        seen = (out.stderr or out.stdout).splitlines()[:1]
        raise KafkaSetupError(f"Apache Kafka 4 needs Java 17 or newer; {java} is {seen}")
    return java


def kafka_libs(version: str = KAFKA_VERSION, home: Path | None = None) -> Path:
    """The folder of jars a KRaft node runs from (``java -cp '<libs>/*'``)."""
    if home is not None:
        libs = home / "libs"
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise KafkaSetupError(f"SCV_KAFKA_HOME={home}: no libs/kafka_2.13-*.jar there")
        return libs
    folder = cache_root() / f"kafka-{version}"
    libs = folder / "libs"
    if (libs / _COMPLETE).exists():
        return libs
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be fetching the same set
        if not (libs / _COMPLETE).exists():
            _fetch(version, folder, libs)
    return libs


def _fetch(version: str, folder: Path, libs: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaSetupError(
            "fetching Apache Kafka needs Maven (Debian: apt-get install maven), or set "
            "SCV_KAFKA_HOME to an Apache Kafka install"
        )
    java_binary()  # Maven needs it too; say so before Maven does, in one line
    pom = folder / "pom.xml"
    pom.write_text(_POM.format(kafka=version, log4j=LOG4J_VERSION, slf4j=SLF4J_VERSION))
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=folder))
    cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies"]
    cmd += [f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise KafkaSetupError(f"Maven could not fetch Apache Kafka {version}: {tail}")
    (staging / _COMPLETE).write_text(f"org.apache.kafka:kafka_2.13:{version}\n")
    if libs.exists():
        shutil.rmtree(libs)
    staging.rename(libs)


#: Only the server jar and a logging backend: the rest comes as its dependencies.
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>scv.local</groupId>
  <artifactId>apache-kafka-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>{slf4j}</version>
    </dependency>
  </dependencies>
</project>
"""
