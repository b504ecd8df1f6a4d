using System.Diagnostics;
using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Runtime.Cuda;
using NUnit.Framework.Api;
using NUnit.Framework.Interfaces;
using NUnit.Framework.Internal;

namespace NativeVae.DeviceTests;

/// <summary>
/// <c>NativeVae.DeviceTests [--match REGEX]... [--list] [--require-cuda]</c>: loads NativeVae.Tests, runs the tests whose full name
/// matches any of the patterns (default: those that take a CUDA backend, and the PTX compile tests), and prints one
/// line per test (result, seconds, name), the output of each (max abs errors), failure messages, a count per test
/// class and a closing "N passed, M failed, K skipped". First it describes the CUDA devices ILGPU finds; with
/// <c>--require-cuda</c> it stops there (exit 3) when there is none. Exit code: 0 when nothing failed, 1 otherwise,
/// 2 on bad use.
/// </summary>
public static class Program
{
    /// <summary>
    /// Tests that run on a CUDA backend ("cuda", "cuda-plain", "cuda-tiled" in their names) and PTX compilation. The
    /// backend may stand anywhere among the arguments, which NUnit shows separated by ", " (or quoted, for a string).
    /// </summary>
    private static readonly string[] DefaultPatterns = [@"\bcuda(-plain|-tiled)?\b", @"\.PtxCompileTests\."];

    public static int Main(string[] args)
    {
        var patterns = new List<string>();
        bool listOnly = false, requireCuda = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--match" when i + 1 < args.Length:
                    patterns.Add(args[++i]);
                    break;
                case "--list":
                    listOnly = true;
                    break;
                case "--require-cuda":
                    requireCuda = true;
                    break;
                default:
                    Console.Error.WriteLine("usage: NativeVae.DeviceTests [--match REGEX]... [--list] [--require-cuda]");
                    return 2;
            }
        }
        var regexes = (patterns.Count > 0 ? patterns : [.. DefaultPatterns]).Select(p => new Regex(p, RegexOptions.CultureInvariant)).ToArray();

        if (!DescribeCuda() && requireCuda)
        {
            Console.WriteLine("device-tests: --require-cuda, and ILGPU finds no CUDA device");
            return 3;
        }

        var assembly = typeof(NativeVae.Tests.TestBackends).Assembly;
        var runner = new NUnitTestAssemblyRunner(new DefaultTestAssemblyBuilder());
        var settings = new Dictionary<string, object>
        {
            ["NumberOfTestWorkers"] = 0,
            ["WorkDirectory"] = AppContext.BaseDirectory,
        };
        var root = runner.Load(assembly, settings);
        var filter = new NameFilter(regexes);

        var selected = Leaves(root).Where(filter.Match).ToList();
        Console.WriteLine($"device-tests: {selected.Count} of {Leaves(root).Count()} tests selected by {string.Join(" | ", regexes.Select(r => r.ToString()))}");
        if (listOnly)
        {
            foreach (var t in selected) Console.WriteLine(t.FullName);
            return 0;
        }

        var listener = new Listener();
        var clock = Stopwatch.StartNew();
        runner.Run(listener, filter);
        clock.Stop();

        Console.WriteLine();
        Console.WriteLine("per test class: passed / failed / skipped");
        foreach (var group in listener.Results.GroupBy(r => ClassName(r.Test)).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            Console.WriteLine($"  {group.Key,-48} {group.Count(IsPass),4} / {group.Count(IsFail),4} / {group.Count(IsSkip),4}");
        }
        int passed = listener.Results.Count(IsPass), failed = listener.Results.Count(IsFail), skipped = listener.Results.Count(IsSkip);
        Console.WriteLine($"device-tests: {clock.Elapsed.TotalSeconds:F1} s");
        Console.WriteLine($"{passed} passed, {failed} failed, {skipped} skipped");
        return failed == 0 ? 0 : 1;
    }

    /// <summary>Prints what ILGPU reports of each CUDA device (architecture, PTX ISA, driver); false when there is none.</summary>
    private static bool DescribeCuda()
    {
        try
        {
            using var context = Context.Create(builder => builder.Cuda());
            var devices = context.GetCudaDevices();
            Console.WriteLine($"device-tests: ILGPU finds {devices.Count} CUDA device(s); TestBackends.HasCuda = {NativeVae.Tests.TestBackends.HasCuda}");
            foreach (var device in devices) device.PrintInformation(Console.Out);
            return devices.Count > 0;
        }
        catch (Exception e)
        {
            Console.WriteLine($"device-tests: probing CUDA failed: {e.GetType().Name}: {e.Message}");
            return false;
        }
    }

    private static IEnumerable<ITest> Leaves(ITest test) =>
        test.HasChildren ? test.Tests.SelectMany(Leaves) : [test];

    private static string ClassName(ITest test) => test.ClassName?.Split('.').Last() ?? "(none)";

    private static bool IsPass(ITestResult r) => r.ResultState.Status == TestStatus.Passed;

    private static bool IsFail(ITestResult r) => r.ResultState.Status == TestStatus.Failed;

    private static bool IsSkip(ITestResult r) => r.ResultState.Status is TestStatus.Skipped or TestStatus.Inconclusive;

    /// <summary>Selects leaf tests whose full name matches a pattern; NUnit passes their fixtures and setup fixtures.</summary>
    private sealed class NameFilter(Regex[] patterns) : TestFilter
    {
        public override bool Match(ITest test) => !test.IsSuite && patterns.Any(p => p.IsMatch(test.FullName));

        public override TNode AddToXml(TNode parentNode, bool recursive) => parentNode.AddElement("device-tests-filter");
    }

    /// <summary>Prints each finished test as it ends; keeps the leaf results (and failed suites' setup errors).</summary>
    private sealed class Listener : ITestListener
    {
        public List<ITestResult> Results { get; } = [];

        public void TestStarted(ITest test) { }

        public void TestFinished(ITestResult result)
        {
            if (result.Test.IsSuite)
            {
                // A fixture whose one-time setup failed reports it here; its tests are counted as failed below.
                if (result.ResultState.Status == TestStatus.Failed && result.ResultState.Site is FailureSite.SetUp or FailureSite.TearDown)
                    Console.WriteLine($"SUITE {result.ResultState} {result.FullName}: {result.Message}");
                return;
            }
            Results.Add(result);
            string tag = result.ResultState.Status switch
            {
                TestStatus.Passed => "PASS",
                TestStatus.Failed => "FAIL",
                _ => "SKIP",
            };
            Console.WriteLine($"{tag} {result.Duration,7:F2}s {result.FullName}");
            foreach (string line in result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                Console.WriteLine($"     | {line}");
            if (result.ResultState.Status != TestStatus.Passed && !string.IsNullOrWhiteSpace(result.Message))
            {
                foreach (string line in result.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries).Take(20))
                    Console.WriteLine($"     ! {line.TrimEnd()}");
                if (result.ResultState.Status == TestStatus.Failed && result.StackTrace is { } stack)
                    foreach (string line in stack.Split('\n', StringSplitOptions.RemoveEmptyEntries).Take(8))
                        Console.WriteLine($"     @ {line.TrimEnd()}");
            }
            Console.Out.Flush();
        }

        public void TestOutput(TestOutput output) { }

        public void SendMessage(TestMessage message) { }
    }
}
