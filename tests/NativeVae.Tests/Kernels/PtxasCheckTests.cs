using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using NativeVae.Kernels.Gpu;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// The offline GPU check: every catalogued kernel compiled to PTX for Ampere (what ILGPU emits on an A100, H100 or
/// H200) and assembled by NVIDIA's ptxas for sm_80 and sm_90, without a GPU. ptxas rejects what the driver's JIT
/// would reject, and reports registers, spills, stack frame and shared memory per kernel; cuobjdump's SASS shows the
/// tensor-core instructions (HMMA) and local-memory traffic (LDL/STL). The figures go to docs/ptxas-kernels.md,
/// which this test keeps equal to what the toolchain reports.
/// The toolchain comes from tools/cuda-offline/fetch-toolchain.sh; where it cannot be fetched, the tests skip.
/// </summary>
[NonParallelizable]
public sealed class PtxasCheckTests
{
    /// <summary>The machine targets checked: A100 and H100/H200.</summary>
    private static readonly string[] MachineArchitectures = ["sm_80", "sm_90"];

    private const string TablePath = "docs/ptxas-kernels.md";
    private const string UpdateVariable = "NATIVEVAE_UPDATE_PTXAS_TABLE";
    private static readonly TimeSpan FetchTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(2);

    private string? _toolDirectory;
    private string _fetchMessage = "";
    private string? _workDirectory;
    private readonly Dictionary<(string Kernel, string Arch), KernelReport> _reports = new();

    [OneTimeSetUp]
    public void AssembleEveryKernel()
    {
        _toolDirectory = FindOrFetchToolchain(out _fetchMessage);
        if (_toolDirectory is null) return;
        _workDirectory = Directory.CreateTempSubdirectory("nativevae-ptxas-").FullName;

        foreach (var kernel in GpuKernelCatalog.All)
        {
            string ptx = Path.Combine(_workDirectory, kernel.Name + ".ptx");
            File.WriteAllText(ptx, CompiledPtx.Of(kernel.Name));
            foreach (string arch in MachineArchitectures)
                _reports[(kernel.Name, arch)] = Assemble(kernel, ptx, arch);
        }
    }

    [OneTimeTearDown]
    public void RemoveWork()
    {
        if (_workDirectory is not null && Environment.GetEnvironmentVariable("NATIVEVAE_KEEP_PTX") != "1") Directory.Delete(_workDirectory, recursive: true);
    }

    private static IEnumerable<TestCaseData> KernelsAndArchitectures() =>
        from kernel in GpuKernelCatalog.All
        from arch in MachineArchitectures
        select new TestCaseData(kernel.Name, arch).SetArgDisplayNames(kernel.Name, arch);

    [TestCaseSource(nameof(KernelsAndArchitectures))]
    public void AssemblesForTheMachine(string kernel, string arch)
    {
        var report = Report(kernel, arch);
        Assert.That(report.Error, Is.Null, $"ptxas -arch={arch} rejected {kernel}:\n{report.Error}");
        Assert.That(report.Registers, Is.GreaterThan(0), $"{kernel} ({arch}): ptxas reported no register count");
    }

    private static IEnumerable<TestCaseData> TensorCoreKernels() =>
        from kernel in GpuKernelCatalog.All
        where kernel.TensorCores
        from arch in MachineArchitectures
        select new TestCaseData(kernel.Name, arch).SetArgDisplayNames(kernel.Name, arch);

    [TestCaseSource(nameof(TensorCoreKernels))]
    public void TensorCoreKernelsRunOnTensorCoresFromRegisters(string kernel, string arch)
    {
        var report = Report(kernel, arch);
        Assert.Multiple(() =>
        {
            Assert.That(report.HmmaCount, Is.GreaterThan(0), $"{kernel} ({arch}): no HMMA in its SASS");
            Assert.That(report.SpillStores + report.SpillLoads, Is.Zero, $"{kernel} ({arch}): spills");
            Assert.That(report.StackBytes, Is.Zero, $"{kernel} ({arch}): a stack frame");
            Assert.That(report.LocalAccesses, Is.Zero, $"{kernel} ({arch}): LDL/STL in its SASS");
        });
    }

    [Test]
    public void TheCommittedTableIsWhatPtxasReports()
    {
        RequireToolchain();
        string table = Table();
        string path = Path.Combine(TestPaths.RepoRoot, TablePath);
        if (Environment.GetEnvironmentVariable(UpdateVariable) == "1")
            File.WriteAllText(path, table);
        string committed = File.Exists(path) ? File.ReadAllText(path) : "";
        Assert.That(committed, Is.EqualTo(table),
            $"{TablePath} differs from what ptxas reports now; regenerate it with {UpdateVariable}=1 dotnet test " +
            "--filter PtxasCheckTests and commit it");
    }

    private KernelReport Report(string kernel, string arch)
    {
        RequireToolchain();
        return _reports[(kernel, arch)];
    }

    private void RequireToolchain()
    {
        if (_toolDirectory is null)
            Assert.Ignore("NVIDIA's offline PTX tools (ptxas, cuobjdump) are absent and could not be fetched: " +
                          "run tools/cuda-offline/fetch-toolchain.sh (needs apt-get and Debian's non-free component). " +
                          _fetchMessage.Trim());
    }

    private string Table()
    {
        var text = new StringBuilder();
        text.AppendLine("# Kernels as ptxas sees them");
        text.AppendLine();
        text.AppendLine("Every ILGPU kernel, compiled to PTX for sm_80 (ISA 7.8) and assembled offline by CUDA 11.8's `ptxas -v`;");
        text.AppendLine("HMMA and LDL/STL are counted in `cuobjdump -sass`. Written by `PtxasCheckTests` (run it with");
        text.AppendLine($"`{UpdateVariable}=1` to regenerate); the test fails when this file and the toolchain disagree.");
        text.AppendLine("Tensor-core kernels must have HMMA, no spills, no stack frame and no local memory.");
        text.AppendLine();
        text.AppendLine("| kernel | arch | tensor cores | registers | spill stores / loads (bytes) | stack (bytes) | static shared (bytes) | HMMA | LDL+STL |");
        text.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var ((kernel, arch), r) in _reports.OrderBy(p => p.Key.Kernel, StringComparer.Ordinal).ThenBy(p => p.Key.Arch, StringComparer.Ordinal))
        {
            string row = r.Error is not null
                ? $"| {kernel} | {arch} | {(r.TensorCores ? "yes" : "no")} | rejected | | | | | |"
                : $"| {kernel} | {arch} | {(r.TensorCores ? "yes" : "no")} | {r.Registers} | {r.SpillStores} / {r.SpillLoads} | {r.StackBytes} | {r.SharedBytes} | {r.HmmaCount} | {r.LocalAccesses} |";
            text.AppendLine(row);
        }
        return text.ToString();
    }

    private KernelReport Assemble(GpuKernel kernel, string ptx, string arch)
    {
        string cubin = Path.ChangeExtension(ptx, arch + ".cubin");
        var (exit, output) = Run("ptxas", $"-arch={arch} -v -o \"{cubin}\" \"{ptx}\"");
        if (exit != 0) return new KernelReport(kernel.TensorCores) { Error = output.Trim() };
        var (sassExit, sass) = Run("cuobjdump", $"-sass \"{cubin}\"");
        if (sassExit != 0) return new KernelReport(kernel.TensorCores) { Error = "cuobjdump: " + sass.Trim() };
        return new KernelReport(kernel.TensorCores)
        {
            Registers = Number(output, @"Used (\d+) registers"),
            StackBytes = Number(output, @"(\d+) bytes stack frame"),
            SpillStores = Number(output, @"(\d+) bytes spill stores"),
            SpillLoads = Number(output, @"(\d+) bytes spill loads"),
            SharedBytes = Number(output, @"(\d+) bytes smem"),
            HmmaCount = Regex.Matches(sass, @"\bHMMA\.").Count,
            LocalAccesses = Regex.Matches(sass, @"\b(LDL|STL)\b").Count,
        };
    }

    private static int Number(string text, string pattern)
    {
        var match = Regex.Match(text, pattern);
        return match.Success ? int.Parse(match.Groups[1].Value) : 0;
    }

    private (int Exit, string Output) Run(string tool, string arguments)
    {
        var (exit, stdout, stderr) = RunProcess(Path.Combine(_toolDirectory!, tool), arguments, ToolTimeout);
        return (exit, stdout + stderr);
    }

    /// <summary>A process's exit code and output; exit -1 with a message on stderr when it outlives <paramref name="timeout"/>.</summary>
    private static (int Exit, string Stdout, string Stderr) RunProcess(string file, string arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(file, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            return (-1, "", $"{Path.GetFileName(file)} {arguments}: no answer in {timeout.TotalSeconds} s");
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>The toolchain's bin folder: the fetch script's cache when ptxas is there, else what the script fetches.</summary>
    private static string? FindOrFetchToolchain(out string why)
    {
        string script = Path.Combine(TestPaths.RepoRoot, "tools", "cuda-offline", "fetch-toolchain.sh");
        try
        {
            var (exit, stdout, stderr) = RunProcess("bash", $"\"{script}\"", FetchTimeout);
            string bin = stdout.Trim();
            why = stderr;
            return exit == 0 && File.Exists(Path.Combine(bin, "ptxas")) ? bin : null;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            why = e.Message;
            return null;
        }
    }

    private sealed record KernelReport(bool TensorCores)
    {
        public string? Error { get; init; }
        public int Registers { get; init; }
        public int StackBytes { get; init; }
        public int SpillStores { get; init; }
        public int SpillLoads { get; init; }
        public int SharedBytes { get; init; }
        public int HmmaCount { get; init; }
        public int LocalAccesses { get; init; }
    }
}
