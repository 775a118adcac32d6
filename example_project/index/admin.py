from django.contrib import admin

from .models import File, Project, Release


class ReleaseInline(admin.TabularInline):
    model = Release
    extra = 0
    fields = ["version", "created_at"]
    readonly_fields = ["created_at"]
    show_change_link = True


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "normalized_name", "archived", "created_by", "created_at"]
    list_filter = ["archived"]
    search_fields = ["name", "normalized_name"]
    filter_horizontal = ["maintainers"]
    readonly_fields = ["normalized_name", "created_at", "created_by"]
    inlines = [ReleaseInline]


class FileInline(admin.TabularInline):
    model = File
    extra = 0
    fields = ["filename", "packagetype", "size", "uploaded_by", "uploaded_via_trusted_publisher"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ["project", "version", "created_at"]
    search_fields = ["project__name", "version"]
    inlines = [FileInline]


@admin.register(File)
class FileAdmin(admin.ModelAdmin):
    list_display = ["filename", "release", "packagetype", "size", "uploaded_by",
                    "uploaded_via_trusted_publisher", "uploaded_at"]
    list_filter = ["uploaded_via_trusted_publisher", "packagetype"]
    search_fields = ["filename", "uploaded_by", "publisher_label", "sha256"]
    readonly_fields = ["release", "filename", "normalized_filename", "content", "sha256",
                       "blake2_256", "size", "packagetype", "python_version", "requires_python",
                       "uploaded_at", "uploaded_by", "uploaded_via_trusted_publisher",
                       "publisher_label", "attestations"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False  # files arrive through /legacy/ only
