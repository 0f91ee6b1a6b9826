namespace KernelModel.Cli;

internal static class SpecLoader
{
    /// <summary>Loads --spec: null → default, "default"/"ppc64" → embedded, otherwise a JSON file.</summary>
    public static bool TryLoad(string? value, out MachineSpec spec, out string error)
    {
        error = "";
        try
        {
            spec = value switch
            {
                null or "default" => MachineSpec.Default,
                "ppc64" => MachineSpec.Ppc64,
                _ => MachineSpec.Load(value),
            };
            return true;
        }
        catch (Exception e) when (e is System.IO.IOException or System.IO.InvalidDataException or UnauthorizedAccessException)
        {
            spec = null!;
            error = e.Message;
            return false;
        }
    }
}
