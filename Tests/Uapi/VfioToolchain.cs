using System.Diagnostics;

namespace KernelModel.Tests.Uapi;

/// <summary>
/// The C side of the uAPI conformance tests: linux/vfio.h and gcc. When either is missing the tests skip, except
/// under CI=true, where a missing toolchain must not pass silently and the tests fail instead.
/// </summary>
internal static class VfioToolchain
{
    public const string HeaderPath = "/usr/include/linux/vfio.h";

    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string? GccPath { get; } = FindOnPath("gcc");

    public static string? Missing(bool requiresGcc)
    {
        if (!System.IO.File.Exists(HeaderPath))
        {
            return $"{HeaderPath} not found (install the Linux uAPI headers, e.g. linux-libc-dev)";
        }

        return requiresGcc && GccPath is null ? "gcc not found on PATH" : null;
    }

    /// <summary>Called first by each test: under CI=true a missing toolchain is a failure with the reason.</summary>
    public static void Require(bool requiresGcc)
    {
        if (Missing(requiresGcc) is { } reason)
        {
            Assert.Fail($"CI=true, so the uAPI conformance tests may not skip, but {reason}.");
        }
    }

    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string fileName, params string[] args)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {fileName}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} did not finish in 2 minutes");
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => System.IO.Path.Combine(dir, name))
            .FirstOrDefault(System.IO.File.Exists);
}

/// <summary>
/// A [Fact] that skips, saying why, when linux/vfio.h (or gcc, if <c>requiresGcc</c>) is missing and CI is not "true".
/// xunit 2 has no dynamic skip, so the decision is made when the attribute is constructed.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class VfioToolchainFactAttribute : FactAttribute
{
    public VfioToolchainFactAttribute(bool requiresGcc = true)
    {
        if (!VfioToolchain.IsCi && VfioToolchain.Missing(requiresGcc) is { } reason)
        {
            Skip = $"{reason}; set CI=true to make this a failure";
        }
    }
}
