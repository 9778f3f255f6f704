using System.ComponentModel.DataAnnotations;

namespace Apex.Server.Storage;

internal sealed class StorageOptions
{
    public const string Section = "Apex:Storage";

    /// <summary><c>sqlite</c> (the embedded default) or <c>postgres</c>.</summary>
    [Required, RegularExpression("^(sqlite|postgres)$")]
    public string Provider { get; set; } = "sqlite";

    /// <summary>For sqlite, a path to the database file (default <c>data/apex.db</c>); for postgres, an Npgsql connection string.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>How long stored events are kept; null keeps them for ever.</summary>
    public TimeSpan? EventRetention { get; set; }
}
