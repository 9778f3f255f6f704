namespace Apex.Server.Storage;

/// <summary>This process's id among the nodes sharing a database.</summary>
internal sealed class NodeIdentity
{
    public string Id { get; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";
}
