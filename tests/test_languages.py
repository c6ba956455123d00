"""The compiled languages with an image each (rust, go, java) through POST /api/eval, under
the real sandbox profile: hello world, a compile error (non-zero exit, the compiler's
own words on stderr), a runtime error; hello world again under gVisor."""

from __future__ import annotations

import pytest

from appliance.client import ApplianceClient
from tests.support import FINAL_STATUSES, eventually

HELLO = {
    "rust": "fn main() {\n    let v: Vec<u32> = (1..=10).collect();\n"
    '    println!("hello from rust {}", v.iter().sum::<u32>());\n}\n',
    "go": 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hello from go", 55)\n}\n',
    "java": "import java.util.stream.IntStream;\n\npublic class Main {\n    public static void main(String[] args) {\n"
    '        System.out.println("hello from java " + IntStream.rangeClosed(1, 10).sum());\n    }\n}\n',
}
EXPECTED = {"rust": "hello from rust 55\n", "go": "hello from go 55\n", "java": "hello from java 55\n"}

# (code, words the compiler prints)
COMPILE_ERRORS = {
    "rust": ('fn main() {\n    let x: i32 = "text";\n}\n', ["error[E0308]", "mismatched types", "main.rs:2"]),
    "go": ("package main\n\nfunc main() {\n\tx := 1\n}\n", ["main.go:4", "declared but not used"]),
    "java": (
        'public class Main {\n    public static void main(String[] args) {\n        int x = "text";\n    }\n}\n',
        ["Main.java:3: error", "incompatible types", "compilation failed"],
    ),
}

# (code, exit code, words on stderr)
RUNTIME_ERRORS = {
    "rust": (
        "fn main() {\n    let v: Vec<i32> = Vec::new();\n    let i = std::env::args().count() + 2;\n"
        '    println!("{}", v[i]);\n}\n',
        101,
        ["panicked", "index out of bounds", "main.rs:4"],
    ),
    "go": (
        'package main\n\nimport "os"\n\nfunc main() {\n\tvar a []int\n\t_ = a[len(os.Args)+4]\n}\n',
        2,
        ["panic: runtime error: index out of range", "main.go:7"],
    ),
    "java": (
        "public class Main {\n    public static void main(String[] args) {\n"
        '        throw new IllegalStateException("boom");\n    }\n}\n',
        1,
        ['Exception in thread "main" java.lang.IllegalStateException: boom', "Main.java:3"],
    ),
}


@pytest.fixture(scope="module")
def client(server):
    with ApplianceClient(server.url, api_key=server.admin_key) as client:
        yield client


def run(client: ApplianceClient, language: str, code: str, engine: str = "docker", wait: float = 90) -> dict:
    submitted = client.call(
        "POST", "/api/eval", json={"language": language, "code": code, "timeout": 30, "engine": engine}
    )
    return eventually(
        lambda: (
            (result := client.call("GET", f"/api/eval-status/{submitted.eval_id}")).status in FINAL_STATUSES and result
        ),
        timeout=wait,
        interval=0.05,
        message=f"{language} on {engine} finishing",
    )


@pytest.mark.parametrize("language", ["rust", "go", "java"])
def test_hello_world(client, language):
    result = run(client, language, HELLO[language])
    assert (result.status, result.exit_code, result.output, result.error) == ("completed", 0, EXPECTED[language], ""), (
        result
    )
    assert result.limits_hit == []


@pytest.mark.parametrize("language", ["rust", "go", "java"])
def test_compile_error_fails_with_the_compilers_message(client, language):
    code, words = COMPILE_ERRORS[language]
    result = run(client, language, code)
    assert result.exit_code not in (0, None) and result.success is False, result
    assert result.output == ""
    for word in words:
        assert word in result.error, result.error


@pytest.mark.parametrize("language", ["rust", "go", "java"])
def test_runtime_error_exits_non_zero_with_the_trace(client, language):
    code, exit_code, words = RUNTIME_ERRORS[language]
    result = run(client, language, code)
    assert (result.exit_code, result.success) == (exit_code, False), result
    for word in words:
        assert word in result.error, result.error


def test_java_runs_out_of_heap_as_an_error_not_a_kill(client):
    """The heap is half the container's memory: a program that keeps allocating gets
    OutOfMemoryError, not the kernel's OOM kill."""
    code = (
        "import java.util.*;\n\npublic class Main {\n    public static void main(String[] args) {\n"
        "        List<long[]> hoard = new ArrayList<>();\n        while (true) hoard.add(new long[1 << 20]);\n"
        "    }\n}\n"
    )
    result = run(client, "java", code)
    assert result.exit_code == 1 and "java.lang.OutOfMemoryError: Java heap space" in result.error, result


def test_go_imports_outside_the_standard_library_fail_at_once(client):
    code = 'package main\n\nimport "github.com/example/nothing"\n\nfunc main() { nothing.Do() }\n'
    result = run(client, "go", code)
    # Exit 1 from the go tool itself: it did not wait for a network until the timeout.
    assert result.exit_code == 1 and result.reason != "timeout", result
    assert "github.com/example/nothing" in result.error, result


@pytest.mark.slow
@pytest.mark.parametrize("language", ["rust", "go", "java"])
def test_hello_world_under_gvisor(client, language):
    result = run(client, language, HELLO[language], engine="gvisor")
    assert (result.status, result.exit_code, result.output, result.error) == ("completed", 0, EXPECTED[language], ""), (
        result
    )
